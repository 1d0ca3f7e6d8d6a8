"""The engine's Governance: holds protected changes and large deletions for a person."""

from __future__ import annotations

from governance.config import GovernanceConfig
from governance.models import GovernanceRequest
from governance.notifications import notify
from governance.policy import change_risk, protected
from governance.services import auto_approve
from runs.engine.outcomes import AwaitingApproval
from runs.engine.protocols import ProposedChange
from runs.models import Attempt, Phase, Run
from runs.services import record_event

Kind = GovernanceRequest.Kind


def protected_patterns(run: Run, config: GovernanceConfig) -> list[str]:
    """The configured protected paths, the project's own, and the files that decide the
    project environment: a change to them installs new code, with network access."""
    manifests = [f"/{m}" for m in (run.environment or {}).get("manifests", [])]
    return config.protected_paths + list(run.project.protected_paths) + manifests


class Gatekeeper:
    def __init__(self, run: Run, phase: Phase, attempt: Attempt, config: GovernanceConfig) -> None:
        self.run = run
        self.phase = phase
        self.attempt = attempt
        self.config = config

    def review(self, change: ProposedChange) -> None:
        touched = protected(change.paths, protected_patterns(self.run, self.config))
        net_deletion = change.lines_removed - change.lines_added
        deletion = self.config.deletion
        kind = (
            Kind.PROTECTED_PATH
            if touched
            else Kind.APPROVAL_REQUIRED
            if self.phase.approval_required
            else Kind.LARGE_DELETION
            if net_deletion > deletion.block
            else None
        )
        if deletion.notify <= net_deletion <= deletion.block:
            record_event(
                self.run,
                "large_deletion",
                phase_id=self.phase.phase_id,
                net_deleted_lines=net_deletion,
            )
            notify(
                "large_deletion",
                self.run,
                f"phase {self.phase.phase_id} deletes {net_deletion} lines net",
                phase_id=self.phase.phase_id,
            )
        if kind is None:
            return
        request = self._request(change, kind, touched, net_deletion)
        if request.risk in self.config.auto_approve and net_deletion <= deletion.block:
            auto_approve(
                request,
                policy=f"auto_approve: {request.risk} risk ({'; '.join(request.risk_reasons)})",
            )
            return
        record_event(
            self.run,
            "approval_needed",
            request=request.pk,
            request_kind=kind,
            risk=request.risk,
            paths=touched or change.paths,
        )
        raise AwaitingApproval(
            request.pk,
            change.diff,
            f"{request.get_kind_display()} change waits for approval "
            f"(risk {request.risk}): request #{request.pk}",
        )

    def _request(
        self, change: ProposedChange, kind: str, touched: list[str], net_deletion: int
    ) -> GovernanceRequest:
        large = net_deletion > self.config.deletion.block
        risk, reasons = change_risk(
            touched if touched else change.paths,
            touched,
            change.lines_added + change.lines_removed,
            self.config,
            floor="high" if large else "low",
        )
        if large:
            reasons.append(
                f"net deletion of {net_deletion} lines (over {self.config.deletion.block})"
            )
        return GovernanceRequest.objects.create(
            run=self.run,
            phase=self.phase,
            attempt=self.attempt,
            kind=kind,
            risk=risk,
            risk_reasons=reasons,
            diff=change.diff,
            paths=change.paths,
            protected_paths=touched,
            lines_added=change.lines_added,
            lines_removed=change.lines_removed,
            reason=change.reason,
            base_commit=change.base_commit,
        )
