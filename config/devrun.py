"""`make run`: embedded (or given) PostgreSQL and Redis, migrations, the demo tenant, then every process.

The processes run under config.supervisor: one that exits is restarted with a backoff instead of taking
the others down. Ctrl-C stops the processes and then the embedded servers; data stays in .data/.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from config.embedded import DATA_DIR, embedded_services
from config.prometheus import empty_multiprocess_dir
from config.supervisor import read_procfile, supervise

ROOT = Path(__file__).resolve().parent.parent


def waha_walkthrough(web_port: str, waha_port: str) -> str:
    """How to link a number through the WAHA sandbox (a WhatsApp-Web session) and message it."""
    sandbox = f"http://127.0.0.1:{waha_port}"
    return (
        f"  WAHA sandbox:   {sandbox}/  (a fake WhatsApp-Web gateway: its page has the QR codes)\n"
        f"    1. http://demo.localhost:{web_port}/ → Settings → WhatsApp numbers → Link with QR code\n"
        f'    2. "scan" it: the Scan (link) button on {sandbox}/, or\n'
        f"       curl -X POST {sandbox}/_sandbox/sessions/<session>/link\n"
        "    3. a customer writes: the form on the sandbox's page, or\n"
        '       make manage ARGS="simulate_inbound --tenant demo --number +15550001111 '
        '--from +15557654321 --text Hi"\n'
        "    4. answer from the inbox; the ticks follow (sent, delivered, read)\n"
    )


def main() -> int:
    os.environ.setdefault("DJANGO_ENV", "development")
    # Every process writes its metrics here and the web's /metrics adds them up (config/prometheus.py).
    metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or str(DATA_DIR / "prometheus")
    with embedded_services() as extra:
        env = {**os.environ, **extra}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # the setup commands below are not worth counting
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        manage = [sys.executable, str(ROOT / "manage.py")]
        subprocess.run([*manage, "migrate_platform", "-v", "0"], env=env, check=True, cwd=ROOT)
        subprocess.run([*manage, "seed_demo"], env=env, check=True, cwd=ROOT)
        port = env.get("WEB_PORT", "8000")
        print(
            f"\n  Platform admin: http://localhost:{port}/admin/\n"
            f"  Demo tenant:    http://demo.localhost:{port}/  (admin: http://demo.localhost:{port}/admin/)\n"
            f"  Health:         http://localhost:{port}/healthz\n"
            f"{waha_walkthrough(port, env.get('WAHA_SANDBOX_PORT', '8003'))}"
            "  Ctrl-C stops everything.\n",
            flush=True,
        )
        # Emptied before any process starts, never while one runs: each writes to the files it opened.
        empty_multiprocess_dir(metrics_dir)
        try:
            return supervise(
                read_procfile(ROOT / "Procfile"),
                env={**env, "PROMETHEUS_MULTIPROC_DIR": metrics_dir},
                cwd=ROOT,
            )
        except KeyboardInterrupt:  # before the supervisor took over Ctrl-C
            return 0


if __name__ == "__main__":
    sys.exit(main())
