"""`bananas workflow [ID]`: one workflow as the tree it was built from
(chain steps in order, group members, the chord callback), each step with
its state, attempts and duration; the workflow's state, policy and, when
it failed, which step failed it and why. Without an ID: the running
workflows and the counts per state (docs/workflows.md, "Seeing a workflow")."""

from __future__ import annotations

import time
from typing import Any

import click
import orjson

from ..brokers import Broker
from ..brokers.workflow_records import WORKFLOW_STATES, WorkflowView
from ..dashboard.render import duration
from ..dashboard.workflow_tree import build_tree
from ..dashboard.workflow_views import running
from .common import broker_option, fail, load_settings, main, run_with_broker

GROUP_LINES = 20  # the text form lists a group's members up to this many, then sums them up
LIST_LIMIT = 50


@main.command("workflow")
@click.argument("workflow_id", metavar="[ID]", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output, nothing cut.")
@click.option(
    "--limit", default=LIST_LIMIT, show_default=True, help="Without ID: list at most this many."
)
@broker_option
def workflow(workflow_id: str | None, as_json: bool, limit: int, broker: str | None) -> None:
    """A workflow's steps as a tree (state, attempts, duration per step),
    its state and policy, and the step that failed it. Without ID: the
    running workflows, oldest first, and the count of workflows per state."""
    settings = load_settings(BANANAS_BROKER_URL=broker)
    if workflow_id is None:
        if limit < 1:
            fail(f"--limit must be at least 1 (got {limit})", 2)
        listing = run_with_broker(settings, lambda b: running(b, limit))
        if as_json:
            click.echo(orjson.dumps(listing, option=orjson.OPT_INDENT_2).decode())
        else:
            click.echo(render_list(listing))
        return
    wf_id = workflow_id

    async def go(b: Broker) -> dict[str, Any] | None:
        view = await b.workflow(wf_id)
        return None if view is None else describe(view)

    data = run_with_broker(settings, go)
    if data is None:
        fail(
            f"no workflow {workflow_id!r} on this broker: unknown, or expired (a final "
            f"workflow is kept for RESULT_TTL={settings.result_ttl:g}s)"
        )
    if as_json:
        click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(render(data))


def describe(view: WorkflowView) -> dict[str, Any]:
    """The workflow as one JSON object: its fields, its tree, its steps."""
    data = view.to_dict()
    data["tree"] = build_tree(view.steps).to_dict()
    for step in data["steps"]:
        step["state"] = "running" if _running(step) else step["state"]
    return data


def _running(step: dict[str, Any]) -> bool:
    return bool(step["state"] == "queued" and step["job_state"] == "running")


def render_list(listing: dict[str, Any]) -> str:
    counts = listing["counts"]
    lines = ["workflows  " + ", ".join(f"{counts[s]} {s}" for s in WORKFLOW_STATES)]
    rows = listing["running"]
    if rows:
        lines.append(f"\n{'ID':<36}  {'STEPS DONE':>12}  POLICY")
        for r in rows:
            lines.append(f"{r['id']:<36}  {r['done']:>5}/{r['total']:<6}  {r['policy']}")
    return "\n".join(lines)


def render(data: dict[str, Any]) -> str:
    state = data["state"]
    rows = [
        ("workflow", data["id"]),
        ("state", f"{state} (on failure: {data['policy']})"),
        ("steps", f"{data['done']}/{data['total']} final"),
        ("created", _iso(data["created_at"])),
    ]
    if data["finished_at"]:
        took = duration(data["finished_at"] - data["created_at"])
        rows.append(("finished", f"{_iso(data['finished_at'])} (after {took})"))
    if data["failed_step"]:
        name = next((s["name"] for s in data["steps"] if s["id"] == data["failed_step"]), "?")
        rows.append(("failed", f"step {data['failed_step']} ({name}): {data['error'] or '?'}"))
    elif data["error"]:
        rows.append(("error", str(data["error"])))
    lines = [f"{label:<9} {value}" for label, value in rows]
    lines.append("")
    lines += _tree(data["tree"], "", "", None)
    return "\n".join(lines)


def _tree(node: dict[str, Any], first: str, rest: str, role: str | None) -> list[str]:
    """Lines of a node: `first` prefixes its own line, `rest` its children's."""
    label = f" ({role})" if role else ""
    if node["kind"] == "step":
        return [first + _step_line(node, label)]
    children = node["children"]
    title = node["kind"]
    if node["kind"] in ("group", "steps"):
        title += f" of {len(children)}"
    lines = [first + title + label]
    roles: list[str | None] = [None] * len(children)
    if node["kind"] == "chord":
        roles = ["header", "callback"]
    if node["kind"] == "group" and len(children) > GROUP_LINES:
        return lines + _summary(children, rest)
    for i, child in enumerate(children):
        last = i == len(children) - 1
        lines += _tree(
            child, rest + ("└─ " if last else "├─ "), rest + ("   " if last else "│  "), roles[i]
        )
    return lines


def _summary(children: list[dict[str, Any]], rest: str) -> list[str]:
    """A big group: its members counted per state, and those not completed."""
    steps = [s for c in children for s in _steps(c)]
    counts: dict[str, int] = {}
    for s in steps:
        counts[s["state"]] = counts.get(s["state"], 0) + 1
    lines = [rest + "├─ " + ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))]
    odd = [s for s in steps if s["state"] in ("failed", "cancelled", "running")]
    for s in odd[:GROUP_LINES]:
        lines.append(rest + "├─ " + _step_line(s))
    more = len(odd) - GROUP_LINES
    lines.append(
        rest + f"└─ ({len(steps)} steps{f', {more} more not shown' if more > 0 else ''}; "
        "--json lists all)"
    )
    return lines


def _steps(node: dict[str, Any]) -> list[dict[str, Any]]:
    if node["kind"] == "step":
        return [node]
    return [s for c in node["children"] for s in _steps(c)]


def _step_line(s: dict[str, Any], label: str = "") -> str:
    parts = [(s["name"] or "?") + label, s["state"]]
    attempts = s["attempts"]
    if s["state"] == "running" and attempts is not None:
        parts.append(f"attempt {attempts + 1}")  # the record counts finished attempts
    elif attempts:
        parts.append(f"{attempts} attempt{'' if attempts == 1 else 's'}")
    if s["duration_ms"] is not None:
        parts.append(duration(s["duration_ms"] / 1000))
    line = "  ".join(parts) + f"  [{s['id']}]"
    if s["error"] and s["state"] != "completed":
        line += "  " + str(s["error"]).strip().splitlines()[0] if str(s["error"]).strip() else ""
    return line


def _iso(unix: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix))


__all__ = ["describe", "render", "render_list", "workflow"]
