"""The patient's plan in the web application: page, PDF, API and who may see it."""

from __future__ import annotations

from tests.unit.care.test_plan import require_weasyprint
from tests.unit.web.conftest import WebWorld


def test_patient_reads_their_own_plan(web: WebWorld) -> None:
    client = web.client("pat-mel")
    home = client.get("/", follow_redirects=True)
    assert home.status_code == 200
    assert str(home.url).endswith(f"/patients/{web.patients['melanoma']}/plan")
    # The web melanoma example has BRAF V600E and no BRAF inhibitor: Amtagvi (lifileucel) is not
    # eligible (label section 1), so the plan explains cell therapy in general and what would have
    # to change (a BRAF inhibitor first).
    assert "Cell therapy: how it works" in home.text
    assert "BRAF inhibitor" in home.text
    assert "Download as PDF" in home.text


def test_patient_cannot_read_another_patients_plan(web: WebWorld) -> None:
    client = web.client("pat-mel")
    assert client.get(f"/patients/{web.patients['all']}/plan").status_code == 404
    assert client.get(f"/patients/{web.patients['all']}/plan.pdf").status_code == 404
    assert client.get(f"/api/patients/{web.patients['all']}/plan").status_code == 404


def test_plan_api_cites_sources_with_addresses(web: WebWorld) -> None:
    client = web.client("pat-mel")
    plan = client.get(f"/api/patients/{web.patients['melanoma']}/plan").json()
    assert plan["sources"]
    assert all(s["url"].startswith(("https://", "http://")) for s in plan["sources"] if s.get("url"))
    # patient-support.md section 2 lists CancerCare among the organisations to point to.
    assert "cancercare.org" in str(plan["support"]).lower()


def test_plan_pdf_downloads(web: WebWorld) -> None:
    require_weasyprint()
    client = web.client("coord")
    done = client.get(f"/patients/{web.patients['melanoma']}/plan.pdf")
    assert done.status_code == 200
    assert done.headers["content-type"] == "application/pdf"
    assert done.content.startswith(b"%PDF")
    assert "attachment" in done.headers["content-disposition"]
