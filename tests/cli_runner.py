"""Run a CLI's ``main(argv)`` in-process, as a user's shell would see it: exit code, stdout, stderr."""
from __future__ import annotations


def call_main(main, argv, capsys):
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err
