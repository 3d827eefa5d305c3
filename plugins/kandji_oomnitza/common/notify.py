"""What a settings file's ``notify`` block asks for, delivered through Airflow's notifier mechanism and the
Apprise provider (``apache-airflow-providers-apprise``): email, Slack, Teams, PagerDuty and a hundred more
services, each from one URL.

A target is either an **Airflow connection id** of type ``apprise`` (its ``config`` holds the service
URLs, with their credentials, in Airflow's connection store or a secrets backend) or an **Apprise URL
that carries no credentials**: a JSON/form/XML webhook (``json://host/path``) or mail through a relay that
needs no login (``mailto://relay:25?to=...&from=...``). A URL with a user, a password or a secret-looking
parameter is refused at parse time: credentials never live in a settings file.

Messages say what happened in one sentence, then the counts and the links (the run, its error log); they
never carry a token, a PIN or a record's payload. Delivering never fails a run: a target that cannot be
reached is logged by name (a connection id, or a URL's scheme and host) and skipped.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import parse_qsl, quote, urlsplit

from airflow.sdk import BaseNotifier
from pydantic import AfterValidator, Field

from kandji_oomnitza.common.redaction import redact, shorten
from kandji_oomnitza.settings_files import Strict

if TYPE_CHECKING:
    from airflow.sdk import Context

log = logging.getLogger(__name__)

# Apprise's schemes whose URL needs no secret: generic webhooks and mail through an open relay. Every
# other service (slack://, msteams://, pagerduty://, ...) embeds a token: it goes in a connection.
URL_SCHEMES = ("json", "jsons", "form", "forms", "xml", "xmls", "mailto", "mailtos")
CONNECTION_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,249}")
SECRET_PARAMETER = re.compile(r"pass|pwd|token|secret|key|auth|sig", re.IGNORECASE)
BODY_LIMIT = 1500  # characters of a message body: a notice, not a report


def check_target(value: str) -> str:
    """A notification target: a connection id, or an Apprise URL of a kind that holds no credentials."""
    text = value.strip()
    if "://" not in text:
        if not CONNECTION_ID.fullmatch(text):
            raise ValueError(
                f"{shorten(text, 60)!r} is neither an Airflow connection id (letters, digits, _ . -) nor a URL "
                f"({', '.join(s + '://' for s in URL_SCHEMES[::2])}...)"
            )
        return text
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in URL_SCHEMES:
        raise ValueError(
            f"a {scheme}:// URL carries the service's credentials: put it in an Airflow connection of type "
            "apprise (its config field) and name that connection here"
        )
    if parts.username or parts.password or any(SECRET_PARAMETER.search(k) for k, _ in parse_qsl(parts.query)):
        raise ValueError(
            f"this {scheme}:// URL holds credentials: put it in an Airflow connection of type apprise (its config "
            "field) and name that connection here; settings files hold no secrets"
        )
    if not parts.hostname:
        raise ValueError(f"{scheme}:// URL without a host")
    return text


Target = Annotated[str, AfterValidator(check_target)]
Targets = Annotated[list[Target], Field(min_length=1)]


class IntegrationNotify(Strict):
    """An integration file's ``notify`` block: who hears about what (each a list of targets)."""

    on_failure: Targets | None = Field(None, description="the run failed, or missed its deadline")
    on_records_failed: Targets | None = Field(
        None, description="the run succeeded but records failed or were skipped"
    )
    on_safeguard: Targets | None = Field(None, description="a safeguard stopped the flagging of records")


class WorkflowNotify(Strict):
    """A workflow file's ``notify`` block."""

    on_failure: Targets | None = Field(None, description="the run failed")
    on_approval_waiting: Targets | None = Field(
        None, description="a person must approve the action (the message links the approval)"
    )


# -- the messages ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Notice:
    """One message: a title, its one sentence, then counts and links."""

    title: str
    sentence: str
    details: list[str] = field(default_factory=list)
    failure: bool = True

    @property
    def body(self) -> str:
        text = "\n".join([self.sentence, *(f"- {line}" for line in self.details)])
        return shorten(redact(text), BODY_LIMIT)


def airflow_url(path: str) -> str:
    """A link into this Airflow: ``[api] base_url`` + path; the bare path (and how to fix it) without one."""
    from airflow.configuration import conf

    base = (conf.get("api", "base_url", fallback="") or "").rstrip("/")
    return f"{base}{path}" if base else f"{path} (set Airflow's [api] base_url for a full link)"


def run_url(dag_id: str, run_id: str) -> str:
    return airflow_url(f"/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}")


def pulled_summary(context: dict[str, Any], task_id: str, key: str) -> dict[str, Any] | None:
    """A failed run's summary XCom, where the callback may read XComs (the DAG processor may; ``dag.test()``
    may not: the message then says less)."""
    ti = context.get("ti")
    if ti is None:
        return None
    try:
        pulled = ti.xcom_pull(task_ids=task_id, key=key)
    except Exception:
        return None
    return pulled if isinstance(pulled, dict) else None


def failure_reason(context: dict[str, Any], failure: str | None) -> str:
    """Why a run failed, in words: the summary's sentence, else the failed task, else Airflow's reason."""
    if failure:
        return failure
    if (ti := context.get("ti")) is not None:
        return f"task {ti.task_id} failed (its log says why)"
    return str(context.get("reason") or "see the run in Airflow")


def context_run_id(context: dict[str, Any]) -> str:
    return str(context.get("run_id") or getattr(context.get("dag_run"), "run_id", None) or "?")


def counts_line(counts: Mapping[str, int | None]) -> str:
    """``kandji records 64, records sent 64``: the counts in words, in their order, leaving out the unknown."""
    return ", ".join(f"{key.replace('_', ' ')} {n}" for key, n in counts.items() if n is not None)


# -- delivery -------------------------------------------------------------------------------------
def target_label(target: str) -> str:
    """How logs name a target: a connection id as it is, a URL by its scheme and host only."""
    if "://" not in target:
        return f"connection {target!r}"
    parts = urlsplit(target)
    return f"{parts.scheme}://{parts.hostname or '?'}"


def notify_words(notify: Strict | None) -> str:
    """A notify block for a DAG's docs: each event and its targets (a URL by scheme and host only: its
    path may be a webhook's secret)."""
    told = notify.model_dump(exclude_none=True) if notify is not None else {}
    parts = [f"{event} → {', '.join(target_label(t) for t in targets)}" for event, targets in told.items()]
    return "; ".join(parts) or "none (see notify: in the README)"


def _service(target: str, connection: Any | None) -> Any:
    import apprise
    from airflow.providers.apprise.hooks.apprise import AppriseHook

    services = apprise.Apprise()
    if connection is None:
        services.add(target)
    else:
        AppriseHook(apprise_conn_id=target).set_config_from_conn(connection, services)
    return services


def _notify_type(notice: Notice) -> Any:
    from apprise import NotifyType

    return NotifyType.FAILURE if notice.failure else NotifyType.WARNING


def _plain_text() -> Any:
    """Every notice is plain text, declared so: Apprise then escapes it for each service's own format
    (Slack's mrkdwn, Markdown, HTML mail), so a device name such as ``<https://evil|Approve>`` or
    ``<!channel>`` arrives as those characters, never as a link or a mention."""
    from apprise import NotifyFormat

    return NotifyFormat.TEXT


REFUSED = "the service did not accept it (see Apprise's warning above)"


def _reached(target: str, notice: Notice, delivered: bool, why: str) -> bool:
    """Log one target's outcome (by connection id, or a URL's scheme and host only)."""
    if delivered:
        log.info("Notified %s: %s", target_label(target), notice.title)
    else:
        log.warning("Could not notify %s (%s): %s", target_label(target), notice.title, why)
    return delivered


def deliver(targets: Sequence[str], notice: Notice) -> list[str]:
    """Send ``notice`` to each target; returns those it could not reach (each logged). Never raises."""
    from airflow.sdk import BaseHook

    missed = []
    for target in targets:
        try:
            connection = None if "://" in target else BaseHook.get_connection(target)
            sent = _service(target, connection).notify(
                title=notice.title,
                body=notice.body,
                notify_type=_notify_type(notice),
                body_format=_plain_text(),
            )
            delivered, why = bool(sent), REFUSED
        except Exception as exc:  # a notification must never fail the run it reports on
            delivered, why = False, shorten(redact(str(exc)), 200)
        if not _reached(target, notice, delivered, why):
            missed.append(target)
    return missed


async def deliver_async(targets: Sequence[str], notice: Notice) -> list[str]:
    """``deliver`` for the triggerer's event loop (deadline alerts run there)."""
    from airflow.providers.common.compat.connection import get_async_connection

    missed = []
    for target in targets:
        try:
            connection = None if "://" in target else await get_async_connection(target)
            sent = await _service(target, connection).async_notify(
                title=notice.title,
                body=notice.body,
                notify_type=_notify_type(notice),
                body_format=_plain_text(),
            )
            delivered, why = bool(sent), REFUSED
        except Exception as exc:
            delivered, why = False, shorten(redact(str(exc)), 200)
        if not _reached(target, notice, delivered, why):
            missed.append(target)
    return missed


class SettingsNotifier(BaseNotifier):
    """An Airflow notifier (a DAG's ``on_failure_callback``, a human-in-the-loop task's ``notifiers``)
    that composes its message from the callback's context and delivers it to a settings file's targets.
    Nothing in it is templated: the message is built from values, never rendered."""

    template_fields = ()

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        """Nothing to render (and ``dag.test()`` hands callbacks a serialized DAG without a template env)."""

    def __init__(self, targets: Sequence[str], compose: Callable[[Any], Notice]) -> None:
        super().__init__()
        self.targets = list(targets)
        self.compose = compose

    def notify(self, context: Context) -> None:
        try:
            notice = self.compose(context)
        except Exception as exc:
            log.warning("Could not compose the notification for %s: %s", self.targets, shorten(exc, 200))
            return
        deliver(self.targets, notice)


class DeadlineNotifier(BaseNotifier):
    """A deadline alert's callback (``AsyncCallback``), run by the triggerer: Airflow builds it from the
    DAG's kwargs and the missed run's context (``dag_run``, ``deadline``) and awaits it."""

    template_fields = ()
    render_template_fields = SettingsNotifier.render_template_fields

    def __init__(
        self, *, targets: Sequence[str], name: str, deadline: str, context: Context | None = None
    ) -> None:
        super().__init__(context)
        self.targets, self.name, self.deadline = list(targets), name, deadline

    def notify(self, context: Context) -> None:
        deliver(self.targets, self.notice(context))

    async def async_notify(self, context: Context) -> None:
        try:
            notice = self.notice(context)
        except Exception as exc:
            log.warning("Could not compose the deadline notification: %s", shorten(exc, 200))
            return
        await deliver_async(self.targets, notice)

    def notice(self, context: Any) -> Notice:
        run = context.get("dag_run") or {}
        dag_id, run_id = str(run.get("dag_id", "?")), str(run.get("dag_run_id") or run.get("run_id") or "?")
        state = run.get("state") or "running"
        return Notice(
            title=f"{self.name}: not finished within {self.deadline}",
            sentence=(
                f"{self.name} ({dag_id}) run {run_id} has not finished {self.deadline} after it was queued "
                f"(it is {state}); a sync still running by then is stuck or far slower than usual."
            ),
            details=[
                f"deadline: {(context.get('deadline') or {}).get('deadline_time', '?')}",
                f"run: {run_url(dag_id, run_id)}",
            ],
        )
