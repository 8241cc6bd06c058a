"""Reports: counts, median days to close, and the trips the channel saved."""

from __future__ import annotations

from datetime import timedelta

from models.base import utcnow
from tests.support import ADMIN_TOKEN, Twilio

HEADERS = {"authorization": f"Bearer {ADMIN_TOKEN}"}
FIELDS = {"postal_code": "1435678911", "district": "6", "plate_number": "12", "intended_use": "1"}


async def test_stats_count_cases_and_trips_saved(client, app, twilio: Twilio):
    for answer in ("NEW 6", "1435678911", "6", "12", "1", "SKIP", "YES"):
        await twilio.sms(answer, sender="+989121234567")
    walk_in = await client.post(
        "/api/v1/cases",
        json={"service": "land_use_inquiry", "phone": "09350000000", "fields": FIELDS},
        headers=HEADERS,
    )
    code = walk_in.json()["code"]
    start = utcnow()
    app.state.runtime.clock = lambda: start + timedelta(days=2)
    await client.patch(f"/api/v1/cases/{code}", json={"status": "approved"}, headers=HEADERS)
    stats = (await client.get("/api/v1/stats", headers=HEADERS)).json()
    assert stats["total"] == 2
    assert stats["by_service"] == {"land_use_inquiry": 2}
    assert stats["by_channel"] == {"sms": 2}
    assert stats["by_district"] == {"6": 2}
    assert stats["by_status"]["approved"] == 1 and stats["by_status"]["received"] == 1
    assert stats["cases_without_a_visit"] == 1
    assert stats["trips_saved"] == 3
    assert "land_use_inquiry" in stats["median_days_to_close"]
