"""The web application in a real browser (chromium through Playwright) against a real server.

The steps of issue 5: the coordinator signs in, uploads a bundled patient through the intake form
and reads its evaluation, opens a trial from the trial list, enters a toxicity time point and sees
its grade; the melanoma patient signs in, reads their plan, and cannot open the ALL patient's pages.
Every step leaves a full-page screenshot in ``out/test-screenshots/``.

Run only these: ``pytest -m browser``; leave them out: ``pytest -m "not browser"``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from tests.e2e.browser.live import LiveServer, sign_in
from tests.unit.web.conftest import MELANOMA_BUNDLE

pytestmark = pytest.mark.browser

Shot = Callable[..., Path]  # shot(page, name, full_page=True)


def test_coordinator_uploads_a_patient_and_reads_the_evaluation(page: Page, shot: Shot) -> None:
    sign_in(page, "coord")
    shot(page, "01-coordinator-patient-list")
    page.goto("/patients/new")
    # The page has two forms (bundle upload, key facts); this step uses the upload.
    upload = page.locator("form", has=page.locator("input[type=file][name=bundle]"))
    upload.locator("input[name=bundle]").set_input_files(str(MELANOMA_BUNDLE))
    upload.get_by_label("Label for the care team").fill("browser upload")
    with page.expect_navigation():
        upload.get_by_role("button", name="Upload and evaluate").click()
    expect(page).to_have_url(re.compile(r"/patients/[A-Za-z0-9_-]+$"))
    # Lifileucel (Amtagvi) label, indication: unresectable or metastatic melanoma previously
    # treated with a PD-1 blocking antibody and, if BRAF V600 mutation-positive, a BRAF inhibitor.
    # The example has BRAF V600E and no BRAF inhibitor: not eligible, for that reason.
    indication = page.locator("#ind-lifileucel-melanoma-after-anti-pd1")
    expect(indication).to_contain_text("not eligible")
    expect(indication).to_contain_text("BRAF inhibitor")
    expect(page.locator("body")).to_contain_text("browser upload")
    shot(page, "02-evaluation-after-upload")


def test_coordinator_opens_a_trial_from_the_trial_list(page: Page, shot: Shot) -> None:
    sign_in(page, "coord")
    page.goto("/trials")
    expect(page.get_by_role("heading", name="Trials", exact=True)).to_be_visible()
    first = page.locator("#trial-results a[href^='/trials/NCT']").first
    nct = first.inner_text().strip()
    assert re.fullmatch(r"NCT\d{8}", nct), nct
    shot(page, "03-trial-list")
    with page.expect_navigation():
        first.click()
    expect(page).to_have_url(re.compile(rf"/trials/{nct}$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text(nct)
    shot(page, "04-trial-page")


def test_coordinator_enters_a_toxicity_time_point_and_sees_the_grade(
    page: Page, shot: Shot, server: LiveServer
) -> None:
    sign_in(page, "coord")
    public_id = server.world.patients["melanoma"]
    page.goto(f"/patients/{public_id}/toxicity")
    page.locator("#f-infusion_date").fill("2026-11-25")
    page.locator("#f-weight_kg").fill("80")
    page.locator("#f-time").fill("2026-11-27T08:00")
    page.locator("#f-temp_c").fill("38.6")
    page.locator("#f-oxygen_device").select_option("low_flow_nasal_cannula")
    page.locator("#f-oxygen_flow_l_min").fill("6")
    with page.expect_navigation():
        page.get_by_role("button", name="Save and grade this time point").click()
    # ASTCT 2019 (Lee DW et al., Biol Blood Marrow Transplant 2019;25:625-638), CRS: fever with
    # hypoxia needing low-flow nasal cannula (<= 6 L/min) is grade 2; exactly 6 L/min is low-flow.
    grade = page.locator("#current-crs-grade")
    expect(grade).to_have_attribute("data-grade", "2")
    shot(page, "05-toxicity-grade")


def test_patient_opens_their_plan(page: Page, shot: Shot, server: LiveServer) -> None:
    sign_in(page, "pat-mel")
    own = server.world.patients["melanoma"]
    # A patient starts on their own plan.
    expect(page).to_have_url(re.compile(rf"/patients/{re.escape(own)}/plan$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Your cell therapy plan")
    # Lifileucel (Amtagvi) is the cell therapy approved for melanoma: a melanoma plan explains it.
    expect(page.locator("body")).to_contain_text(re.compile("lifileucel", re.IGNORECASE))
    shot(page, "06-patient-plan")
    pdf = page.request.get(f"/patients/{own}/plan.pdf")
    assert pdf.status == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.body().startswith(b"%PDF")


def test_patient_cannot_open_another_patients_pages(page: Page, shot: Shot, server: LiveServer) -> None:
    sign_in(page, "pat-mel")
    other = server.world.patients["all"]
    for path in (f"/patients/{other}", f"/patients/{other}/plan", f"/patients/{other}/consults"):
        response = page.goto(path)
        assert response is not None
        assert response.status in (403, 404), f"{path}: {response.status}"
        expect(page.get_by_role("heading", level=1)).to_contain_text("Not found")
        expect(page.locator("body")).not_to_contain_text("all example")
    shot(page, "07-patient-other-record-not-found")


STAFF_PAGES = (
    "/patients",
    "/patients/new",
    "/trials",
    "/consults",
    "/cases",
    "/audit",
    "/patients/{id}",
    "/patients/{id}/toxicity",
    "/patients/{id}/reviews",
    "/patients/{id}/consults",
    "/patients/{id}/case",
    "/patients/{id}/plan",
)


def test_every_care_team_page_opens_without_browser_errors(
    page: Page, shot: Shot, server: LiveServer
) -> None:
    # Console errors include Content-Security-Policy refusals (scripts, styles, images).
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    sign_in(page, "coord")
    public_id = server.world.patients["melanoma"]
    for template in STAFF_PAGES:
        path = template.replace("{id}", public_id)
        response = page.goto(path)
        assert response is not None and response.status == 200, f"{path}: {response and response.status}"
        expect(page.get_by_role("heading", level=1).first).to_be_visible()
        name = path.strip("/").replace(public_id, "patient").replace("/", "-")
        shot(page, f"10-staff-{name}", full_page=False)  # the top is enough to see it rendered
    assert not errors, errors
