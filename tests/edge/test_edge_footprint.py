"""A Raspberry Pi installs only ``hinode-iot[edge]``: the agent must not import cloud-side packages."""

import subprocess
import sys

CLOUD_ONLY = ("polars", "fastapi", "uvicorn", "sklearn", "influxdb_client", "httpx", "cloud", "simulators")


def test_edge_agent_imports_nothing_from_the_cloud_side():
    code = ("import sys, edge_agent.agent, edge_agent.__main__, edge_agent.config\n"
            "from edge_agent.config import available_source_types, source_plugin\n"
            "[source_plugin(t) for t in available_source_types()]\n"
            f"print(sorted(m for m in {CLOUD_ONLY!r} if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_running_agent_does_not_load_the_enrollment_crypto():
    """``run`` builds the parser that also holds ``enroll``; x509 alone weighs ~8 MB of RSS.

    Found when the 1,000,000-reading drain bench rose from 54 to 65 MB after enrollment landed.
    """
    code = ("import sys\n"
            "import edge_agent.__main__ as main\n"
            "try:\n"
            "    main.main(['run', '--help'])\n"
            "except SystemExit:\n"
            "    pass\n"
            "import edge_agent.agent\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'cryptography'))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
