"""The local launcher's secret files: whole, private, and replaced rather than rewritten in place."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from skydriver_api.launchers.local import TOKEN_FILE, LocalLauncher
from skydriver_api.settings import ApiSettings


def test_a_secret_file_is_replaced_whole_so_a_process_reading_it_never_sees_it_empty(tmp_path: Path) -> None:
    launcher = LocalLauncher(ApiSettings(runtime_dir=tmp_path))
    path = Path(launcher._secret_file("scan1", TOKEN_FILE, "first-token"))
    assert path == tmp_path / "scan1" / TOKEN_FILE
    # A worker of the scan opened the token file; the launch of the next worker writes it again.
    with open(path) as reader:
        launcher._secret_file("scan1", TOKEN_FILE, "second-token")
        # written in place (O_TRUNC), the reader got "" here: the 401 a warm worker met
        assert reader.read() == "first-token"
    assert path.read_text() == "second-token"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == [TOKEN_FILE]  # no temporary left behind
