"""benchmarks/peer_install.py: what a peer benchmark installs, and that an installed folder is reused."""

from __future__ import annotations

import sys

from benchmarks import peer_install


def test_only_the_always_packages_and_the_unimportable_ones_are_installed(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(peer_install.subprocess, "run", lambda cmd, check: calls.append(cmd))
    target = peer_install.install_peer(["peerlib==1.0", "kornia==0.6.12", "numpy==1.0", "nosuchmod==2.0"],
                                       "peerlib", ("peerlib", "kornia"), tmp_path / "t")
    [cmd] = calls
    assert cmd[cmd.index("--target") + 1] == str(tmp_path / "t") and "--no-deps" in cmd
    assert cmd[cmd.index("--target") + 2:] == ["peerlib==1.0", "kornia==0.6.12", "nosuchmod==2.0"]  # numpy is there
    assert sys.path[0] == str(target)
    sys.path.remove(str(target))


def test_a_folder_that_holds_the_peer_is_used_as_it_is(tmp_path, monkeypatch):
    (tmp_path / "peerlib").mkdir()
    monkeypatch.setattr(peer_install.subprocess, "run", lambda *a, **k: (_ for _ in ()).throw(AssertionError("pip")))
    assert peer_install.install_peer(["peerlib==1.0"], "peerlib", ("peerlib",), tmp_path) == tmp_path
    sys.path.remove(str(tmp_path))
