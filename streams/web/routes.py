"""Every URL of the site, each with its name (pages build their links with `router[name].url_for`)."""

from __future__ import annotations

from aiohttp import web

from streams.web import (
    views_account,
    views_addresses,
    views_enroll,
    views_factors,
    views_frequency,
    views_map,
    views_near,
    views_offenders,
    views_ops,
    views_pages,
    views_passkeys,
    views_second_step,
    views_statistics,
    views_unsubscribe,
    views_why,
)

ADDRESS = r"/notifications/addresses/{address_id:\d+}"


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get("/", views_pages.home, name="home")
    r.add_get("/faq", views_pages.faq, name="faq")

    r.add_get("/enroll", views_enroll.enroll_form, name="enroll_form")
    r.add_post("/enroll", views_enroll.enroll, name="enroll")
    r.add_get("/confirm/{token}", views_enroll.confirm_form, name="confirm_form")
    r.add_post("/confirm/{token}", views_enroll.confirm, name="confirm")
    r.add_get("/login", views_enroll.login_form, name="login_form")
    r.add_post("/login", views_enroll.login, name="login")
    r.add_get("/login/second-step", views_second_step.second_step_form, name="second_step")
    r.add_post("/login/second-step", views_second_step.second_step, name="second_step_post")
    r.add_post("/login/passkey/options", views_passkeys.sign_in_options, name="passkey_sign_in_options")
    r.add_post("/login/passkey", views_passkeys.sign_in, name="passkey_sign_in")
    r.add_post("/logout", views_enroll.logout, name="logout")
    r.add_get("/forgot", views_enroll.forgot_form, name="forgot_form")
    r.add_post("/forgot", views_enroll.forgot, name="forgot")
    r.add_get("/reset/{token}", views_enroll.reset_form, name="reset_form")
    r.add_post("/reset/{token}", views_enroll.reset, name="reset")
    r.add_get("/account", views_account.account_page, name="account")
    r.add_post("/account/mail/resume", views_account.resume_mail, name="resume_mail")
    r.add_post("/account/mail/start", views_account.start_mail, name="start_mail")
    r.add_post("/account/password", views_account.change_password, name="change_password")
    r.add_post("/account/email", views_account.change_email, name="change_email")
    r.add_get("/account/security", views_factors.security_page, name="security")
    r.add_get("/account/app", views_factors.app_form, name="app_form")
    r.add_post("/account/app", views_factors.app_add, name="app_add")
    r.add_post(r"/account/factors/{factor_id:\d+}/delete", views_factors.remove_factor, name="remove_factor")
    r.add_post("/account/passkeys/options", views_passkeys.register_options, name="passkey_options")
    r.add_post("/account/passkeys", views_passkeys.register, name="passkey_register")
    r.add_post("/account/recovery-codes", views_factors.recovery_codes, name="recovery_codes")
    r.add_get("/email/confirm/{token}", views_account.email_confirm_form, name="email_confirm_form")
    r.add_post("/email/confirm/{token}", views_account.email_confirm, name="email_confirm")
    r.add_post("/account/delete", views_account.delete_logged_in, name="delete_logged_in")
    r.add_get("/delete", views_account.delete_form, name="delete_form")
    r.add_post("/delete", views_account.delete_request, name="delete_request")
    r.add_get("/delete/confirm/{token}", views_account.delete_confirm_form, name="delete_confirm_form")
    r.add_post("/delete/confirm/{token}", views_account.delete_confirm, name="delete_confirm")

    r.add_get("/notifications", views_addresses.notifications, name="notifications")
    r.add_post("/notifications/addresses", views_addresses.add_address, name="add_address")
    r.add_get(ADDRESS, views_addresses.show_address, name="address")
    r.add_post(ADDRESS, views_addresses.edit_address, name="edit_address")
    r.add_post(ADDRESS + "/delete", views_addresses.delete_address, name="delete_address")
    r.add_post("/notifications/offenders", views_offenders.add_watch, name="add_watch")
    r.add_post(
        "/notifications/offenders/{offender_id}/delete", views_offenders.delete_watch, name="delete_watch"
    )
    r.add_post("/notifications/frequency", views_frequency.set_frequency, name="set_frequency")
    r.add_get("/notifications/why", views_why.why_page, name="why")
    r.add_post("/notifications/why", views_why.why_lookup, name="why_lookup")
    r.add_get("/offenders/search", views_offenders.search_page, name="search")
    r.add_post("/offenders/search", views_offenders.search_by_identifier, name="search_by_identifier")
    r.add_get("/offenders/{offender_id}", views_offenders.offender_record, name="record")
    r.add_get("/map", views_map.map_page, name="map")
    r.add_get("/near", views_near.near_page, name="near")
    r.add_get("/api/near", views_near.near_api, name="near_api")
    r.add_get("/statistics", views_statistics.statistics_page, name="statistics")
    r.add_get("/statistics.csv", views_statistics.statistics_download, name="statistics_csv")
    r.add_get("/unsubscribe/{token}", views_unsubscribe.unsubscribe_page, name="unsubscribe_page")
    r.add_post("/unsubscribe/{token}", views_unsubscribe.unsubscribe, name="unsubscribe")

    r.add_get("/healthz", views_ops.healthz, name="healthz")
    r.add_get("/readyz", views_ops.readyz, name="readyz")
