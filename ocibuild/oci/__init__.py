"""The OCI image model: media types, descriptors, manifests, configs, layouts, layers."""
