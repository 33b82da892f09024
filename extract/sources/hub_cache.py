"""A bound on the disk a hub suite's checkpoints take in the Hugging Face cache.

PolyPythia at 410m is 154 revisions x 10 seeds x 0.9 GB. Once a partition is stored in the lake
its revisions are not read again (unless it is extracted again), so a suite with a cache budget
deletes them, through the Hub client's own cache API (`scan_cache_dir`, `delete_revisions`), when
its repositories hold more than the budget. Only revisions whose partitions the lake already
holds are deleted, never one still to be extracted; the oldest downloaded go first. A revision
deleted and needed again is downloaded again (offline, its loading stops with `SuiteUnavailable`
naming the repository and revision, as for any revision not in the cache).
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from huggingface_hub import constants, scan_cache_dir
from huggingface_hub.errors import CacheNotFound


def source(repo_id: str, revision: str) -> str:
    """How a checkpoint's source names a revision of a repository (`Checkpoint.source`)."""
    return f"{repo_id}@{revision}"


def _scan(cache_dir: Path | str | None):
    """The cache the downloads go to, scanned; None without one. `scan_cache_dir` alone would
    take the folder named when huggingface_hub was imported, `hf_hub_download` the current one."""
    try:
        return scan_cache_dir(cache_dir or constants.HF_HUB_CACHE)
    except CacheNotFound:
        return None


def repos_size(repo_ids: Collection[str], cache_dir: Path | str | None = None) -> int:
    """Bytes the cached repositories `repo_ids` hold (each blob once per repository); 0 without a cache."""
    info = _scan(cache_dir)
    if info is None:
        return 0
    return sum(repo.size_on_disk for repo in info.repos if repo.repo_type == "model" and repo.repo_id in repo_ids)


def evict_stored_revisions(
    repo_ids: Collection[str],
    evictable: Collection[str],
    budget_bytes: int,
    cache_dir: Path | str | None = None,
) -> list[str]:
    """Deletes cached revisions of `repo_ids` named in `evictable` (sources, `repo@revision`), the
    oldest downloaded first, until those repositories hold at most `budget_bytes`; returns the
    sources deleted. A revision not named in `evictable` is never touched, so the budget may stay
    exceeded when what is left is still needed."""
    info = _scan(cache_dir)
    if info is None:
        return []
    repos = [repo for repo in info.repos if repo.repo_type == "model" and repo.repo_id in repo_ids]
    held = sum(repo.size_on_disk for repo in repos)
    if held <= budget_bytes:
        return []
    evictable = set(evictable)
    candidates = sorted(
        (
            (revision.last_modified, revision.commit_hash, [source(repo.repo_id, ref) for ref in sorted(revision.refs)])
            for repo in repos
            for revision in repo.revisions
            # every name of the revision must be done with: a ref still to be read keeps it
            if revision.refs and all(source(repo.repo_id, ref) in evictable for ref in revision.refs)
        ),
    )
    chosen: list[str] = []
    deleted: list[str] = []
    for _, commit_hash, sources in candidates:
        chosen.append(commit_hash)
        deleted += sources
        # What deleting them frees, blobs shared with revisions that stay not counted.
        if held - info.delete_revisions(*chosen).expected_freed_size <= budget_bytes:
            break
    if chosen:
        info.delete_revisions(*chosen).execute()
    return deleted
