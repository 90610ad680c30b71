"""`holiday audit` against the real stack: it finds a deliberately corrupted table. (Its rules: tests/unit.)"""

from __future__ import annotations

import time

import httpx
from click.testing import CliRunner

from holiday_tools.cli import main
from holiday_tools.devstack import LocalStack


def run_audit(stack: LocalStack) -> tuple[int, str]:
    result = CliRunner().invoke(
        main, ["audit", "--aws-endpoint", stack.aws_url, "--admin", stack.admin_url, "--threshold", "0"]
    )
    return result.exit_code, result.output


def test_audit_finds_a_deliberately_corrupted_table(stack: LocalStack, ingress: httpx.Client, trip_id: str) -> None:
    booked = ingress.post("/trips/reserve", json={"trip_id": trip_id}).json()
    dynamodb = stack.aws_client("dynamodb")
    rogue = {
        "pk": {"S": trip_id},
        "sk": {"S": "second-charge"},
        "transaction_status": {"S": "charged"},
        "updated_at": {"N": str(time.time() - 3600)},
    }
    dynamodb.put_item(TableName=stack.settings.payments_table, Item=rogue)
    try:
        code, out = run_audit(stack)
        assert code == 1
        assert f"trip {trip_id}: [no duplicates] 2 rows in payments" in out
        assert booked["payment_id"] in out
    finally:
        dynamodb.delete_item(TableName=stack.settings.payments_table, Key={"pk": rogue["pk"], "sk": rogue["sk"]})
    assert run_audit(stack)[0] == 0
