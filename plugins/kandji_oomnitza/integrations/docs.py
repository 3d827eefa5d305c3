"""The integration DAG's documentation (its Docs tab): what the file sets up, in words, from the file."""

from __future__ import annotations

from pathlib import Path

from kandji_oomnitza.integrations.config import Integration
from kandji_oomnitza.settings_files import duration_words


def dag_doc(dag_id: str, integration: Integration, source: Path) -> str:
    what = (
        "Kandji devices (and their installed software) → Oomnitza **assets**"
        if integration.type == "assets"
        else "Kandji directory users → Oomnitza **users**"
    )
    software = ""
    if integration.type == "assets":
        s = integration.software_settings
        software = f"- Software: {'on, route ' + s.route.value if s.enabled else 'off'}\n"
    else:
        software = f"- User selection: {integration.user_settings.selection.value}\n"
    mappings = "\n".join(f"| `{t}` | {integration.resolved(t).label} |" for t in integration.mappings)
    return f"""
# {integration.name}

{integration.description or what}

Defined by `{source.name}` (edit the file to change anything below; a mistake shows as an import error
naming the file, the field and the fix).

- Flow: {what}
- Preference: **{integration.preference.value}**; sync key: `{", ".join(integration.sync_key)}`
{software}- Schedule: `{integration.schedule.cron or "manual only"}` ({integration.schedule.timezone})
- Connections: `{integration.kandji_conn_id}` (Kandji), `{integration.oomnitza_conn_id}` (Oomnitza)
- Records gone from Kandji: {integration.when_missing_words}
- Notifications: {notify_words_of(integration)}

**Every run is a full, idempotent snapshot of Kandji as it is when the run reads it**: Oomnitza matches
records on the sync key, so a rerun or a retry creates no duplicates, and Connector Sync Time is the
time Kandji was read (never the logical date). Because of that, only the newest run syncs: a scheduled
or backfill run skips itself ("Newest run only") when a newer run exists, so a backfill
(`airflow backfill create --dag-id {dag_id} ...` or Trigger → Backfill) does one real sync, for its
newest date, or none when a newer run already synced, and old dates never overwrite newer data. Runs
never overlap: a run waits while an earlier one is still running. Manual runs always sync.

**Trigger with `dry_run: true`** to run everything but the load: the report shows what would be sent.

**Results**: the `report` task logs a summary (Kandji records, sent, added, updated, unchanged, skipped,
failed, calls) and writes the error log (every record not loaded, with its reason) as a CSV at the
path it prints. The run fails when more than {integration.load.max_failed_records} record(s) were not
loaded, after everything else was loaded.

| Oomnitza field | Kandji source |
|---|---|
{mappings}
"""


def notify_words_of(integration: Integration) -> str:
    from kandji_oomnitza.common.notify import notify_words

    words = notify_words(integration.notify)
    if integration.deadline is not None:
        words += (
            f"; deadline {duration_words(integration.deadline)} after a run is queued (told to on_failure)"
        )
    return words
