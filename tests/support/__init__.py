"""Shared test set-up: paths, the unprivileged test users, the busybox rootfs."""
