"""The Debian recipe: rootfs/debian/make.sh runs mmdebstrap from an apt mirror or a
directory of .deb files; the tarball it writes is imported as it is."""

from __future__ import annotations

import os
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ocibuild.errors import OcibuildError, UsageError
from ocibuild.image_import import ImageDescription
from ocibuild.rootfs import LABEL_PREFIX, RECIPES

VARIANTS = ("minbase", "apt")
FALLBACK_MIRROR = "http://deb.debian.org/debian"


@dataclass(frozen=True)
class DebianOptions:
    """How `rootfs debian` builds: the suite, the variant, the packages' source and extra
    packages."""
    suite: str
    variant: str
    source: str  # a mirror URL or a directory of .deb files
    include: tuple[str, ...] = ()

    @property
    def source_label(self) -> str:
        return self.source if "://" in self.source else Path(self.source).resolve().as_uri()


def host_mirror(suite: str) -> str:
    """The mirror the host's apt uses: the one serving `suite`, else the one of the host's
    own release (a Debian mirror serves every suite)."""
    try:
        out = subprocess.run(
            ["apt-get", "indextargets", "--format", "$(REPO_URI) $(RELEASE)"],
            capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return FALLBACK_MIRROR
    pairs = [line.split(" ", 1) for line in sorted(set(out.splitlines())) if " " in line]
    for wanted in (lambda rel: rel == suite, lambda rel: "-" not in rel):
        for uri, release in pairs:
            if wanted(release) and uri.startswith(("http://", "https://", "file:")):
                return uri.rstrip("/")
    return FALLBACK_MIRROR


def resolve_source(source: str | None, suite: str) -> str:
    if source is None:
        return host_mirror(suite)
    if "://" in source:
        return source
    path = Path(source)
    if not path.is_dir():
        raise UsageError(f"--source {source}: neither a mirror URL nor a directory of .deb files")
    if not any(path.glob("*.deb")):
        raise UsageError(f"--source {source}: the directory holds no .deb files")
    if os.geteuid() != 0:
        _check_readable_by_others(path.resolve(), source)
    return str(path.resolve())


def _check_readable_by_others(path: Path, given: str) -> None:
    """mmdebstrap's unshare mode runs apt and dpkg as a subordinate id: to them the
    directory is another user's."""
    if not path.stat().st_mode & stat.S_IROTH:
        raise UsageError(f"--source {given}: the directory must be readable by others "
                         f"(chmod o+rx {path}): mmdebstrap reads it as a subordinate id")
    for parent in [path, *path.parents]:
        if not parent.stat().st_mode & stat.S_IXOTH:
            raise UsageError(f"--source {given}: {parent} must be searchable by others "
                             f"(chmod o+x {parent}): mmdebstrap reads the packages as a "
                             "subordinate id")


def make(opts: DebianOptions, work: Path) -> tuple[Path, ImageDescription]:
    """Make the root filesystem tarball under `work`; returns it and its description."""
    recipe = RECIPES["debian"]
    recipe.check_host()
    # mmdebstrap's hooks run as a subordinate id in unshare mode: they must reach it
    os.chmod(work, 0o755)
    tarball, listing = work / "rootfs.tar", work / "packages.txt"
    argv = ["bash", str(recipe.script), "--variant", opts.variant, "--packages", str(listing)]
    if opts.include:
        argv += ["--include", ",".join(opts.include)]
    argv += [opts.suite, opts.source, str(tarball)]
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise OcibuildError(f"the debian recipe failed (mmdebstrap, exit {proc.returncode}); "
                            "its messages are above")
    packages = [line for line in listing.read_text().splitlines() if line.strip()]
    labels = {
        f"{LABEL_PREFIX}recipe": "debian",
        f"{LABEL_PREFIX}debian.suite": opts.suite,
        f"{LABEL_PREFIX}debian.variant": opts.variant,
        f"{LABEL_PREFIX}debian.source": opts.source_label,
        f"{LABEL_PREFIX}debian.packages": str(len(packages)),
    }
    if opts.include:
        labels[f"{LABEL_PREFIX}debian.include"] = ",".join(opts.include)
    include = f" --include={','.join(opts.include)}" if opts.include else ""
    return tarball, ImageDescription(
        created_by=f"mmdebstrap --variant={opts.variant}{include} {opts.suite}",
        comment=f"{len(packages)} packages from {opts.source_label}",
        labels=labels,
        cmd=("bash",),
    )
