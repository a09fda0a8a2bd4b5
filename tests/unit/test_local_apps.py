"""``PREVIEW_LOCAL_APPS`` and ``preview-local --app``: which apps the local stack fronts, as sandboxes."""

from __future__ import annotations

import pytest
from preview_local.apps import AppSpecError, parse_apps, preserve_host_ids


def test_apps_from_the_environment_and_flags_name_a_sandbox_and_its_base_url() -> None:
    apps = parse_apps(
        ["sbx-app=http://127.0.0.1:5173, sbx-nb=http://localhost:8888/lab", "sbx-x=https://dev.test"]
    )

    assert apps == {
        "sbx-app": "http://127.0.0.1:5173",
        "sbx-nb": "http://localhost:8888",
        "sbx-x": "https://dev.test:443",
    }


def test_a_later_entry_for_the_same_sandbox_wins_so_a_flag_overrides_the_environment() -> None:
    assert parse_apps(["sbx-app=http://127.0.0.1:5173", "sbx-app=http://127.0.0.1:3001"]) == {
        "sbx-app": "http://127.0.0.1:3001"
    }


def test_nothing_configured_is_no_app() -> None:
    assert parse_apps(["", " , "]) == {}


@pytest.mark.parametrize(
    "spec",
    [
        "http://127.0.0.1:5173",  # no id
        "Sbx=http://127.0.0.1:5173",  # not a DNS label (upper case)
        "sbx.app=http://127.0.0.1:5173",  # two labels
        "sbx-=http://127.0.0.1:5173",
        "sbx-app=ftp://127.0.0.1",
        "sbx-app=127.0.0.1:5173",
        "sbx-app=http://127.0.0.1:99999",
    ],
)
def test_an_entry_that_names_no_sandbox_or_no_usable_url_is_refused_with_the_entry_named(spec: str) -> None:
    with pytest.raises(AppSpecError, match=r"ID=URL|app URL"):
        parse_apps([spec])


APPS = {"sbx-vite": "http://127.0.0.1:5173", "sbx-rails": "http://127.0.0.1:3001"}


def test_the_apps_that_keep_the_viewers_host_come_from_the_environment_and_flags() -> None:
    assert preserve_host_ids(["sbx-rails", ""], APPS) == {"sbx-rails"}
    assert preserve_host_ids([" sbx-rails , sbx-vite", "sbx-rails"], APPS) == {"sbx-rails", "sbx-vite"}
    assert preserve_host_ids(["", " , "], APPS) == frozenset()


def test_keeping_the_host_of_an_app_the_stack_does_not_front_is_refused_with_the_id_named() -> None:
    with pytest.raises(AppSpecError, match="sbx-typo: not an app of this stack"):
        preserve_host_ids(["sbx-rails,sbx-typo"], APPS)
