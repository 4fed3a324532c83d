"""The origin store: atomic publish, replace, staging hygiene, file-name checks (no ffmpeg)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
from media_fixtures import fake_manifest

from localcast.media.manifest import TitleManifest
from localcast.media.origin import MANIFEST_NAME, DirectoryOriginStore, OriginError


def stage_files(staging: Path, manifest: TitleManifest) -> Path:
    title = staging / "title"
    title.mkdir()
    for f in manifest.files():
        (title / f.name).write_bytes(b"x" * f.size)
    return title


def publish(store: DirectoryOriginStore, manifest: TitleManifest) -> None:
    with store.staging(manifest.title_id) as staging:
        store.publish(stage_files(staging, manifest), manifest)


def test_publish_makes_the_title_visible_with_its_manifest(tmp_path: Path) -> None:
    store = DirectoryOriginStore(tmp_path / "origin")
    assert store.titles() == []
    m = fake_manifest()
    publish(store, m)
    assert store.titles() == ["fake"]
    assert store.manifest("fake") == m
    listed = {p.name for p in (tmp_path / "origin" / "fake").iterdir()}
    assert listed == {f.name for f in m.files()} | {MANIFEST_NAME}
    assert not (tmp_path / "origin" / ".staging").exists()
    seg = m.video[0].segments[0].file
    with store.open("fake", seg.name) as f:
        assert len(f.read()) == seg.size


def test_publish_replaces_an_existing_title(tmp_path: Path) -> None:
    store = DirectoryOriginStore(tmp_path / "origin")
    publish(store, fake_manifest((240, 720)))
    new = fake_manifest((240,))
    publish(store, new)
    assert store.manifest("fake") == new
    assert len(list((tmp_path / "origin" / "fake").iterdir())) == len(list(new.files())) + 1


def test_publish_refuses_missing_or_unlisted_files(tmp_path: Path) -> None:
    store = DirectoryOriginStore(tmp_path / "origin")
    m = fake_manifest()
    with store.staging("fake") as staging:
        title = stage_files(staging, m)
        (title / m.mpd.name).unlink()
        with pytest.raises(OriginError, match="missing"):
            store.publish(title, m)
        (title / m.mpd.name).write_bytes(b"x" * m.mpd.size)
        (title / "junk.txt").write_text("x")
        with pytest.raises(OriginError, match="unlisted"):
            store.publish(title, m)
    assert store.titles() == []


def test_staging_dirs_are_not_titles_and_dead_ones_are_cleaned(tmp_path: Path) -> None:
    store = DirectoryOriginStore(tmp_path / "origin")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    stale = store.staging_root / f"{dead.stdout.strip()}-abcd-fake"
    stale.mkdir(parents=True)
    (stale / MANIFEST_NAME).write_text("{}")
    mine = store.staging_root / f"{os.getpid()}-beef-other"
    mine.mkdir()
    assert store.titles() == []
    assert store.clean_staging() == [stale.name]
    assert not stale.exists() and mine.exists()


def test_file_names_are_checked(tmp_path: Path) -> None:
    store = DirectoryOriginStore(tmp_path / "origin")
    with pytest.raises(OriginError):
        store.file_path("fake", "../../etc/passwd")
    with pytest.raises(OriginError):
        store.file_path("../x", MANIFEST_NAME)
    assert store.file_path("fake", "a" * 64 + ".m4s").name == "a" * 64 + ".m4s"


def test_update_manifest_only_when_files_are_unchanged(tmp_path: Path) -> None:
    store = DirectoryOriginStore(tmp_path / "origin")
    m = fake_manifest()
    publish(store, m)
    store.update_manifest(dataclasses.replace(m, name="Renamed"))
    got = store.manifest("fake")
    assert got is not None and got.name == "Renamed"
    with pytest.raises(OriginError, match="files differ"):
        store.update_manifest(fake_manifest((240,)))


def test_unreadable_manifest_is_an_origin_error(tmp_path: Path) -> None:
    store = DirectoryOriginStore(tmp_path / "origin")
    (tmp_path / "origin" / "bad").mkdir(parents=True)
    (tmp_path / "origin" / "bad" / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(OriginError, match="unreadable"):
        store.manifest("bad")
    assert store.manifest("absent") is None
