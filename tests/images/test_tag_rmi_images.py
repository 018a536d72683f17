"""tag, rmi and images against the store and the test registry."""

from __future__ import annotations

import json
from pathlib import Path

from tests.images.conftest import BaseImages, Cli, skopeo_digest, store_blobs
from tests.support.registry_server import RegistryServer


def test_tag_then_push_the_new_name(stocked: Cli, images: BaseImages,
                                    http_registry: RegistryServer, tmp_path: Path) -> None:
    ref = f"{http_registry.host}/t17/renamed:v1"
    stocked.ok("tag", "app:1", ref, "app:also")
    listed = stocked.ok("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert sorted(listed) == sorted(["app:1", "app:also", f"{http_registry.host}/t17/renamed:v1"])
    stocked.ok("push", ref)
    assert skopeo_digest(f"docker://{ref}", tmp_path) == images.app.digest


def test_tag_of_a_missing_image_or_to_a_bad_name_fails(stocked: Cli) -> None:
    proc = stocked("tag", "nothere:1", "x:1")
    assert proc.returncode != 0 and "nothere:1: no such image" in proc.stderr
    proc = stocked("tag", "app:1", "Bad Name")
    assert proc.returncode != 0 and "invalid image name" in proc.stderr
    proc = stocked("tag", "app:1", "x@sha256:" + "0" * 64)
    assert proc.returncode != 0 and "not a digest" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_rmi_untags_and_cache_prune_removes_the_blobs(stocked: Cli) -> None:
    stocked.ok("tag", "app:1", "other:2")
    before = store_blobs(stocked)
    out = stocked.ok("rmi", "app:1").stdout
    assert "Untagged: app:1" in out
    names = stocked.ok("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert names == ["other:2"]
    stocked.ok("cache", "prune")
    assert store_blobs(stocked) == before  # still named by other:2
    stocked.ok("rmi", "other:2")
    assert stocked.ok("images", "-q").stdout == ""
    assert store_blobs(stocked) == before  # untagging alone deletes nothing
    stocked.ok("cache", "prune")
    assert store_blobs(stocked) == set()


def test_rmi_by_id_needs_force_when_the_image_has_several_names(stocked: Cli) -> None:
    stocked.ok("tag", "app:1", "other:2")
    image_id = stocked.ok("images", "-q").stdout.strip()
    proc = stocked("rmi", image_id)
    assert proc.returncode != 0 and "2 names" in proc.stderr and "--force" in proc.stderr
    out = stocked.ok("rmi", "--force", "--prune", image_id)
    assert "Untagged: app:1" in out.stdout and "Untagged: other:2" in out.stdout
    assert store_blobs(stocked) == set()


def test_images_filter_and_format(stocked: Cli, images: BaseImages) -> None:
    stocked.ok("tag", "app:1", "example.com/team/tool:2.0", "app:dev")
    stocked.ok("copy", f"oci:{images.path}:latest", "store:busybox:1.36")
    fmt = ["--format", "{{.Repository}}:{{.Tag}}"]
    assert stocked.ok("images", "--filter", "reference=app", *fmt).stdout.split() == \
        ["app:1", "app:dev"]
    assert stocked.ok("images", "--filter", "reference=*:1*", *fmt).stdout.split() == \
        ["app:1", "busybox:1.36"]
    assert stocked.ok("images", "--filter", "reference=example.com/*/*", *fmt
                      ).stdout.split() == ["example.com/team/tool:2.0"]
    assert stocked.ok("images", "busybox", *fmt).stdout.split() == ["busybox:1.36"]
    assert stocked.ok("images", "--filter", "dangling=true", *fmt).stdout == ""

    rows = json.loads(stocked.ok("images", "--format", "json").stdout)
    by_tag = {r["Tag"]: r for r in rows}
    assert by_tag["1.36"]["Digest"] == images.base.digest
    assert by_tag["1"]["Digest"] == images.app.digest
    assert by_tag["1"]["Id"] == by_tag["dev"]["Id"] != by_tag["1.36"]["Id"]

    out = stocked.ok("images", "--filter", "reference=busybox", "--format",
                     "{{.ID}} {{.Digest}} {{.Size}}").stdout.split()
    assert out[1] == images.base.digest and len(out[0]) == 12

    table = stocked.ok("images", "--format", "table {{.Repository}}\\t{{.Tag}}",
                       "--filter", "reference=app").stdout.splitlines()
    assert table[0].split() == ["REPOSITORY", "TAG"] and len(table) == 3

    proc = stocked("images", "--filter", "colour=red")
    assert proc.returncode != 0 and "reference=PATTERN" in proc.stderr
    proc = stocked("images", "--format", "{{.Nope}}")
    assert proc.returncode != 0 and "no field '.Nope'" in proc.stderr


def test_a_nameless_loaded_image_is_dangling(cli: Cli, images: BaseImages,
                                         tmp_path: Path) -> None:
    cli.ok("copy", f"oci:{images.path}:app", f"oci:{tmp_path / 'plain'}")
    cli.ok("load", str(tmp_path / "plain"))
    fmt = ["--format", "{{.Tag}} {{.Digest}}"]
    assert cli.ok("images", "--filter", "dangling=true", *fmt).stdout.split() == \
        ["<none>", images.app.digest]
    assert cli.ok("images", "--filter", "dangling=false", *fmt).stdout == ""
    [row] = json.loads(cli.ok("images", "--format", "json").stdout)
    assert row["RepoTags"] == [] and row["Dangling"]
    assert row["RepoDigests"] == [f"localhost/plain@{images.app.digest}"]


def test_inspect_format_fields_of_a_local_image(stocked: Cli, images: BaseImages) -> None:
    stocked.ok("tag", "app:1", "example.com/team/app:2")
    out = stocked.ok("inspect", "--format", "{{.Digest}}|{{.RepoTags}}|{{.Os}}|{{.Id}}",
                     "app:1").stdout.strip().split("|")
    image_id = stocked.ok("images", "--no-trunc", "-q").stdout.strip()
    assert out == [images.app.digest, "[app:1 example.com/team/app:2]", "linux", image_id]
    layers = json.loads(stocked.ok("inspect", "-f", "{{json .RootFS.Layers}}", "app:1").stdout)
    assert len(layers) == len(json.loads(stocked.ok("inspect", "--format", "json", "app:1")
                                         .stdout)["config"]["rootfs"]["diff_ids"])
    proc = stocked("inspect", "--format", "{{.Nope}}", "app:1")
    assert proc.returncode != 0 and "no field '.Nope'" in proc.stderr
