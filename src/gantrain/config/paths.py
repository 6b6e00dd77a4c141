"""Where the YAML lives: inside the wheel (`gantrain/configs`) or at the repository root (editable install)."""

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent.parent


def config_dir() -> Path:
    """The root config directory; `configs/` at the repository root is the single source of truth."""
    packaged = _PACKAGE_DIR / "configs"
    if (packaged / "train.yaml").is_file():
        return packaged
    repo = _PACKAGE_DIR.parent.parent / "configs"
    if (repo / "train.yaml").is_file():
        return repo
    raise RuntimeError(f"gantrain's configs are missing: looked in {packaged} and {repo}; reinstall gantrain")


def config_groups() -> dict[str, list[str]]:
    """Each config group with the option names it offers (for error messages and docs)."""
    root = config_dir()
    return {
        group.name: sorted(p.stem for p in group.glob("*.yaml"))
        for group in sorted(root.iterdir())
        if group.is_dir()
    }
