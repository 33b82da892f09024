"""A Hugging Face cache laid out as the hub client writes it, filled from local checkpoint folders.

`huggingface_hub` downloads a repository's files into `<cache>/models--<org>--<name>/`: each
file's bytes once in `blobs/<hash>`, each revision's files as relative symlinks
`snapshots/<commit>/<file> -> ../../blobs/<hash>`, and `refs/<branch>` holding the commit the
branch points at. With HF_HUB_OFFLINE the client resolves `revision="step4"` through
`refs/step4` and serves the snapshot's files, so a test can run the hub path (hf_hub_download,
AutoTokenizer.from_pretrained, scan_cache_dir, delete_revisions) on checkpoints it trained.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

# The tokenizer revision of a repository; the files a checkpoint revision holds.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
CHECKPOINT_FILES = ("config.json", "model.safetensors")


def repo_folder(cache: Path, repo_id: str) -> Path:
    return Path(cache) / ("models--" + repo_id.replace("/", "--"))


def cache_revision(cache: Path, repo_id: str, revision: str, files: dict[str, Path]) -> str:
    """Lays out `files` (name in the repository -> local file) as branch `revision` of model
    repository `repo_id`; returns the revision's commit hash."""
    folder = repo_folder(cache, repo_id)
    contents = {name: Path(path).read_bytes() for name, path in sorted(files.items())}
    digests = {name: hashlib.sha256(data).hexdigest() for name, data in contents.items()}
    commit = hashlib.sha1(f"{repo_id}@{revision}:{sorted(digests.items())}".encode()).hexdigest()
    for name, data in contents.items():
        blob = folder / "blobs" / digests[name]
        blob.parent.mkdir(parents=True, exist_ok=True)
        if not blob.exists():
            blob.write_bytes(data)
        link = folder / "snapshots" / commit / name
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():
            link.symlink_to(os.path.relpath(blob, link.parent))
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / revision).write_text(commit)
    return commit


def cache_local_suite(cache: Path, suite_root: Path, repo_id, size: str, seeds, steps) -> None:
    """Each (seed, step) checkpoint folder `<suite_root>/<size>-seed<n>/step<N>/` as revision
    `step<N>` of `repo_id(size, seed)`, and the suite's tokenizer (with the last checkpoint's
    config, which AutoTokenizer reads too) as branch `main` of the first seed's repository."""
    for seed in seeds:
        for step in steps:
            folder = Path(suite_root) / f"{size}-seed{seed}" / f"step{step}"
            cache_revision(
                cache, repo_id(size, seed), f"step{step}", {name: folder / name for name in CHECKPOINT_FILES}
            )
    tokenizer = {name: Path(suite_root) / "tokenizer" / name for name in TOKENIZER_FILES}
    tokenizer["config.json"] = Path(suite_root) / f"{size}-seed{seeds[0]}" / f"step{steps[-1]}" / "config.json"
    cache_revision(cache, repo_id(size, seeds[0]), "main", tokenizer)


def cached_revisions(cache: Path, repo_id: str) -> set[str]:
    """The branches of `repo_id` in the cache whose snapshot is there."""
    folder = repo_folder(cache, repo_id)
    if not (folder / "refs").is_dir():
        return set()
    return {
        ref.name for ref in (folder / "refs").iterdir() if (folder / "snapshots" / ref.read_text().strip()).is_dir()
    }
