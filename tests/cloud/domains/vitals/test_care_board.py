"""The board's care view in a real (headless Debian) chromium, served by uvicorn from the real app on a
real InfluxDB 1.6 holding three days of one patient's vitals: people sign in on /login with their
password (api.auth.users) and see what their consent allows, and nothing else."""

from __future__ import annotations

import os
import re
import time

import pytest

from hinode.security import api_secrets
from tests.cloud.domains.vitals.kit import (DEMO_PEOPLE, PATIENT_A, READ, demo_people, seed_demo, vitals_app,
                                          vitals_lines)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]
playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
PASSWORDS = {"dr-sato": "doctor-pass-1", "son-yamada": "family-pass-1", "cm-kato": "manager-pass-1"}
# What kit.vitals_lines(days=3) writes: systolic 130/134/138, diastolic 80/82/84, SpO2 97/96/95, ...
SYSTOLIC = [130.0, 134.0, 138.0]
SCREENSHOTS = os.environ.get("HINODE_TEST_SCREENSHOTS")     # a directory: the views are saved there to look at


def seed_with_an_alert(registry):
    """The demo registry, and one alert on p-7f3a9c's systolic (as the alerts job would record it)."""
    from cloud.domains.vitals.alert_rules import Breach
    from cloud.domains.vitals.alerts import AlertStore
    from hinode.vitals import Category
    seed_demo(registry)
    AlertStore(registry).record(PATIENT_A, [Breach("systolic_high", "systolic", Category.BLOOD_PRESSURE,
                                                   int(time.time() * 1000) - 3_600_000, 182.0, 180.0, "mm[Hg]")])


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    users = [{"username": name, "role": "viewer", "password_hash": api_secrets.hash_password(password),
              "scopes": [READ]} for name, password in PASSWORDS.items()]
    with vitals_app(tmp_path_factory.mktemp("care-board"), demo_people(), vitals_lines(days=3),
                    setup=seed_with_an_alert,
                    extra_config={"api": {"auth": {"users": users}}}) as (base, registry):
        yield base, registry


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def care_view(browser, base: str, user: str, lang: str, patient: str = PATIENT_A):
    """A fresh browser session: sign in as ``user`` on /login, then open the care view of ``patient``."""
    context = browser.new_context(viewport={"width": 1200, "height": 1000})
    page = context.new_page()
    page.goto(base + "/login")
    if user in PASSWORDS:
        page.fill("input[name=username]", user)
        page.fill("input[name=password]", PASSWORDS[user])
    else:                                                 # a principal with an API token only
        page.fill("input[name=token]", DEMO_PEOPLE[user][0])
    page.click("button[type=submit]")
    page.wait_for_url(base + "/")
    page.goto(f"{base}/board/care.html?patient={patient}&lang={lang}")
    page.wait_for_function("document.body.dataset.loaded", timeout=20_000)
    return context, page


def audit_of(registry, actor: str, action: str) -> list[dict]:
    return [r for r in registry.audit_rows(PATIENT_A) if r["actor"] == actor and r["action"] == action]


def test_the_doctor_sees_the_blood_pressure_trend(stack, browser):
    base, registry = stack
    context, page = care_view(browser, base, "dr-sato", "en")
    try:
        assert page.evaluate("document.body.dataset.loaded") == PATIENT_A
        assert page.locator("[data-role=no-consent]").is_hidden()
        bp = page.locator("section[data-category=blood_pressure]")
        assert bp.get_attribute("data-consent") == "yes"
        assert bp.locator("h2").inner_text() == "Blood pressure"
        dots = bp.locator("[data-series=systolic] circle.dot")
        assert [float(v) for v in dots.evaluate_all("ds => ds.map(d => d.dataset.value)")] == SYSTOLIC
        assert bp.locator("[data-series=diastolic] polyline").count() == 1
        assert bp.locator("[data-role=latest] [data-metric=systolic] strong").inner_text() == "138"
        # the doctor's consent covers every category: each has its chart, none a no-consent note
        for category in ("spo2", "temperature", "weight", "glucose", "heart_rate"):
            assert page.locator(f"section[data-category={category}] svg[data-role=trend]").count() == 1, category
        assert page.locator("[data-role=category-no-consent]").count() == 0
        assert re.match(r"\d{4}/\d{2}/\d{2}|\d{2}/\d{2}/\d{4}", page.locator("[data-role=last-visit]").inner_text())
        (alert,) = page.locator("[data-role=alerts] li[data-alert]").all_inner_texts()
        assert "Blood pressure: Systolic 182 mmHg (systolic_high)" in alert
        assert "Your role: doctor" in page.locator("[data-role=care-role]").inner_text()
        options = page.locator("[data-role=patient] option").all_inner_texts()
        assert sorted(options) == ["山田 花子 (p-7f3a9c)", "田中 一郎 (p-41b2e0)"]
        assert page.locator("[data-role=patient]").input_value() == PATIENT_A
        if SCREENSHOTS:
            page.screenshot(path=f"{SCREENSHOTS}/care-doctor.png", full_page=True)
    finally:
        context.close()
    (row, *_) = audit_of(registry, "dr-sato", "read_summary")
    assert (row["outcome"], row["via"], row["care_role"]) == ("allowed", "api", "doctor")


@pytest.mark.parametrize("lang, heading", [("ja", "同意がないため表示できません"),
                                            ("en", "You have no consent to see this person's data")])
def test_a_family_member_without_consent_gets_the_no_consent_page(stack, browser, lang, heading):
    base, registry = stack
    denied_before = len([r for r in audit_of(registry, "son-yamada", "read_summary") if r["outcome"] == "denied"])
    context, page = care_view(browser, base, "son-yamada", lang)
    try:
        assert page.evaluate("document.body.dataset.loaded") == "no-consent"
        box = page.locator("[data-role=no-consent]")
        assert box.is_visible()
        assert box.locator("h2").inner_text() == heading
        assert "no consent for role family" in box.inner_text()
        assert page.locator("main").is_hidden() and page.locator("[data-role=error]").is_hidden()
        assert page.locator("svg[data-role=trend]").count() == 0
        text = page.evaluate("document.body.innerText")
        if SCREENSHOTS:
            page.screenshot(path=f"{SCREENSHOTS}/care-no-consent-{lang}.png", full_page=True)
        for value in ("182", "130", "134", "138", "80", "97", "36.", "52", "110", "山田", "mmHg"):
            assert value not in text, value
    finally:
        context.close()
    denied = [r for r in audit_of(registry, "son-yamada", "read_summary") if r["outcome"] == "denied"]
    assert len(denied) == denied_before + 1


def test_an_account_without_the_vitals_scope_gets_the_no_consent_page(stack, browser):
    base, _ = stack
    context, page = care_view(browser, base, "meter-viewer", "en")     # meters:read only
    try:
        assert page.evaluate("document.body.dataset.loaded") == "no-consent"
        box = page.locator("[data-role=no-consent]")
        assert box.locator("h2").inner_text() == "You have no consent to see this person's data"
        assert "vitals:read" in box.inner_text()
        assert page.locator("main").is_hidden() and page.locator("svg[data-role=trend]").count() == 0
    finally:
        context.close()


def test_a_category_without_consent_gets_a_note_not_a_chart(stack, browser):
    base, _ = stack
    context, page = care_view(browser, base, "cm-kato", "ja")       # care manager: blood_pressure and weight
    try:
        assert page.locator("section[data-category=blood_pressure] h2").inner_text() == "血圧"
        assert page.locator("section[data-category=weight] svg[data-role=trend]").count() == 1
        spo2 = page.locator("section[data-category=spo2]")
        assert spo2.get_attribute("data-consent") == "none"
        assert spo2.locator("svg").count() == 0
        assert spo2.locator("[data-role=category-no-consent]").inner_text() == "この項目は同意がないため表示できません。"
        assert "97" not in spo2.inner_text()
    finally:
        context.close()
