import os
import subprocess

from retrying import retry


@retry
def restart() -> None:
    os.system("pkill -9 worker")
    subprocess.call(["kill", "-9", str(os.getpid())])  # noqa
    subprocess.Popen(
        ["git", "push", "--force"],  # noqa: AF401 (a later line does not cover the call)
    )


def documented() -> None:
    """Never do `rm -rf /` or `git push --force` here."""
