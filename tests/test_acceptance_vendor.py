"""A vendor's collector and platform plug in through the SUT description (docs/sut.md).

The worked example of the README: the reference collector started as if it were a vendor's
(an argv template), and the reference platform started by "the vendor" (here: the test) on
its own Mosquitto with its own accounts, key file and token, observed only through its API;
the vendor hands the harness the broker's accounts file so that its attack phase (SEC-1) can
play a dishonest station and watch what the broker passes on.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from acceptance.broker import Mosquitto, free_port, wait_listening
from acceptance.broker_accounts import BrokerAccounts
from acceptance.keys import make_key_file
from acceptance.sut import SutError, parse_sut

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "scenarios" / "smoke.yaml"

VENDOR_COLLECTOR = ["{python}", "-m", "acceptance.cli", "collector", "--station", "{station}",
                    "--endpoints", "{endpoints}", "--broker", "{broker}", "--keys", "{keys}",
                    "--spool", "{spool_dir}", "--profiles", "{profiles}", "--heartbeat", "1",
                    "--mqtt-credentials", "{mqtt_credentials}", "--log-level", "WARNING"]


def run_smoke_with(tmp_path: Path, sut: dict) -> subprocess.CompletedProcess:
    """`forecourt run` of the smoke scenario (0.6 days) with this SUT, into tmp_path/run."""
    scenario = yaml.safe_load(SMOKE.read_text(encoding="utf-8"))
    scenario["fleet"] = str(ROOT / "scenarios" / scenario["fleet"])
    scenario["sut"] = sut
    path = tmp_path / "vendor.yaml"
    path.write_text(yaml.safe_dump(scenario, allow_unicode=True), encoding="utf-8")
    return subprocess.run([sys.executable, "-m", "acceptance.cli", "run", str(path), "--out",
                           str(tmp_path / "run"), "--days", "0.6"], capture_output=True,
                          text=True, timeout=1200, cwd=ROOT)


@pytest.mark.e2e
@pytest.mark.mosquitto
def test_vendor_collector_and_platform_are_accepted(tmp_path):
    accounts = BrokerAccounts.generate(["UMB25", "UMB44"])
    creds = accounts.write_credentials(tmp_path / "vendor-mqtt.json")
    broker = Mosquitto(workdir=tmp_path / "mosquitto", accounts=accounts).start()
    keys = make_key_file(["UMB25", "UMB44"], tmp_path / "vendor-keys.json")
    # admin: the harness hands the platform the posted prices (and any signed verification
    # records) as the other departments would (docs/sut.md)
    token = "vendor-admin-token"
    (tmp_path / "tokens.json").write_text(json.dumps(
        {"tokens": [{"token": token, "role": "admin", "name": "harness"},
                    {"token": "vendor-read-token", "role": "read", "name": "harness-read"},
                    {"token": "vendor-tax-token", "role": "tax", "name": "tax-desk"}]}))
    port = free_port()
    platform = subprocess.Popen(
        [sys.executable, "-m", "acceptance.cli", "platform", "--db",
         f"sqlite:///{tmp_path / 'vendor.db'}", "--broker", broker.url, "--http",
         f"127.0.0.1:{port}", "--keys", str(keys), "--registry",
         str(ROOT / "scenarios/fleets/urad-middle-banner.csv"), "--tokens",
         str(tmp_path / "tokens.json"), "--mqtt-credentials", str(creds),
         "--log-level", "WARNING"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening("127.0.0.1", port, 30)
        res = run_smoke_with(tmp_path, {
            "collector": {"kind": "external", "command": VENDOR_COLLECTOR, "per_station": True},
            "platform": {"kind": "external", "base_url": f"http://127.0.0.1:{port}",
                         "token": token, "broker": broker.url, "keys": str(keys),
                         "mqtt_credentials": str(creds), "read_token": "vendor-read-token",
                         "tax_token": "vendor-tax-token"}})
        assert res.returncode == 0, res.stdout + res.stderr
        assert res.stdout.startswith("ACCEPTED"), res.stdout
        security = json.loads((tmp_path / "run" / "security.json").read_text())
        assert security["broker_accounts"] and security["monitor"] == "fc-harness"
        assert all(a["passed"] for a in security["attempts"])
        info = json.loads((tmp_path / "run" / "run.json").read_text())
        assert info["sut"]["collector"]["kind"] == "external"
        assert info["sut_versions"]["platform"] == f"external: http://127.0.0.1:{port}"
        assert not (tmp_path / "run" / "platform.db").exists()  # the harness started none
    finally:
        platform.terminate()
        platform.wait(30)
        broker.stop()


@pytest.mark.e2e
def test_a_vendor_collector_that_exits_on_its_own_is_a_finding_not_a_harness_error(tmp_path):
    """It runs a while (it connects nowhere), then exits 7: not accepted (exit 1), STB-1
    failed with the exit status and the log as evidence — not "could not run" (exit 2)."""
    quits = "import sys, time; print('vendor box: giving up', flush=True); time.sleep(3); " \
            "sys.exit(7)"
    res = run_smoke_with(tmp_path, {"collector": {
        "kind": "external", "per_station": True,
        "command": ["{python}", "-c", quits, "{station}"]}})
    assert res.returncode == 1, res.stdout + res.stderr
    record = json.loads((tmp_path / "run" / "record.json").read_text(encoding="utf-8"))
    outcomes = {r["id"]: r["outcome"] for r in record["requirements"]}
    assert record["verdict"] == "not_accepted" and outcomes["STB-1"] == "fail"
    (m,) = [m for m in record["measurements"] if m["name"] == "sut.exited_on_its_own"]
    assert m["value"] == 1 and not m["passed"]
    assert m["evidence"]["exit_code"] == 7 and m["evidence"]["part"].startswith("collector")
    assert "vendor box: giving up" in m["evidence"]["log_tail"]
    assert any("exited on its own with code 7" in n for n in record["notes"])


def test_sut_errors_name_the_field(tmp_path):
    with pytest.raises(SutError, match=r"sut.collector.kind: expected 'reference' or 'external'"):
        parse_sut({"collector": {"kind": "vendor"}})
    with pytest.raises(SutError, match=r"sut.collector.command: unknown placeholder 'nope'"):
        parse_sut({"collector": {"kind": "external", "command": ["x", "{nope}"]}})
    with pytest.raises(SutError, match=r"sut.platform.base_url"):
        parse_sut({"platform": {"kind": "external", "token": "t"}})
    with pytest.raises(SutError, match=r"sut.collector.mutant: expected a mutant of the reference"):
        parse_sut({"collector": {"kind": "external", "command": ["x"], "mutant": "drop"}})
    with pytest.raises(SutError, match=r"token_env"):
        parse_sut({"platform": {"kind": "external", "token_env": "FC_SURELY_UNSET_VAR"}})
    with pytest.raises(SutError, match=r"cannot read SUT file"):
        parse_sut("missing.yaml", base_dir=tmp_path)
    assert parse_sut(None).collector.kind == "reference"
    assert parse_sut({}, mutant="drop").collector.mutant == "drop"


def test_a_vendor_collector_runs_as_its_per_station_says_whatever_collectors_asks():
    """`--collectors` / `--fleet-processes` are the reference collector's: a vendor's command
    made for one station is never started once for all (its {station} would be "*")."""
    from acceptance.run import RunOptions, _collectors

    for mode, processes in (("per-station", 1), ("fleet", 2)):
        opts = RunOptions(scenario=SMOKE, out=Path("unused"), collectors=mode,
                          fleet_processes=processes)
        one = parse_sut({"collector": {"kind": "external", "command": VENDOR_COLLECTOR,
                                       "per_station": True}})
        box = parse_sut({"collector": {"kind": "external", "command": ["x"]}})
        assert _collectors(opts, one) == ("per-station", 1)
        assert _collectors(opts, box) == ("fleet", 1)
        assert _collectors(opts, parse_sut(None)) == (mode, processes)


def test_reference_collectors_get_the_external_brokers_accounts(tmp_path):
    """A vendor's platform on its own broker with accounts (docs/hosts.md), the reference
    collectors in front of it: they connect with the accounts file the SUT names, not as
    anonymous clients the broker refuses."""
    from acceptance.chain import Chain, ChainSettings

    creds = BrokerAccounts.generate(["UMB25", "UMB44"]).write_credentials(tmp_path / "mqtt.json")
    chain = Chain(ChainSettings(SMOKE, tmp_path / "run", broker="mqtt://127.0.0.1:1883",
                                mqtt_credentials=creds))
    argv = chain._collector_argv("UMB25", "mqtt://127.0.0.1:1883")
    assert argv[argv.index("--mqtt-credentials") + 1] == str(creds.resolve())
    anonymous = Chain(ChainSettings(SMOKE, tmp_path / "run2", broker="mqtt://127.0.0.1:1883"))
    assert "--mqtt-credentials" not in anonymous._collector_argv("UMB25", "mqtt://h:1")
