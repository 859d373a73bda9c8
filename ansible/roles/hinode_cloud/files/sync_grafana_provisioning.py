"""Export the Grafana provisioning files into a staging directory and copy over only what differs.

    python sync_grafana_provisioning.py TARGET [export options...]

Runs ``python -m dashboards export`` with the interpreter running this script; prints
``changed <n>`` (n = files written), so Ansible can report changed only when a file changed.
Files in TARGET that the export does not write are left alone (TARGET may be Grafana's own
provisioning directory).
"""

import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def main(target: Path, export_options: list[str]) -> int:
    with tempfile.TemporaryDirectory() as staging:
        subprocess.run([sys.executable, "-m", "dashboards", "export", staging, *export_options],
                       check=True, stdout=subprocess.DEVNULL)
        changed = 0
        for source in sorted(Path(staging).rglob("*")):
            if source.is_dir():
                continue
            destination = target / source.relative_to(staging)
            if destination.exists() and filecmp.cmp(source, destination, shallow=False):
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, destination)
            destination.chmod(0o644)
            changed += 1
    print(f"changed {changed}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), sys.argv[2:]))
