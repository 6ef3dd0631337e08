"""The application's use cases, each rule written once for every face (API, CLI, daemon).

One module per concern: `changes` (meetings created, changed, retired), `fanout` (a change
to many readers), `reminders`, `subscribers`, `reconcile` (the config file), `deliveries`
(retry, replay, prune), `reads` (what every face shows), `preview`, `bounces`, and
`common` (who may change a record). Faces import this package and call its functions.
"""

from __future__ import annotations

from notifier.service.bounces import (
    BounceResult,
    record_bounce,
)
from notifier.service.changes import (
    ChangeResult,
    apply_change_in,
    apply_status_change,
    create_meeting,
    create_meeting_in,
    create_meetings_in,
    retire_meeting,
    retire_meeting_in,
    update_details_in,
    update_meeting_details,
)
from notifier.service.clocks import (
    RECHECK_EVERY,
    ClockMove,
    apply_clock_rules,
    clock_drift,
    rules_preview,
)
from notifier.service.common import (
    check_owner,
    is_outage,
    outage_reason,
    redact,
)
from notifier.service.deliveries import (
    clear_suppression,
    prune,
    replay,
    retry_delivery,
)
from notifier.service.fanout import (
    expand_fanout,
)
from notifier.service.preview import (
    Preview,
    preview,
)
from notifier.service.public import (
    private_calendar,
    public_calendar,
    public_changes,
    public_index,
    public_meeting,
    public_meetings,
    public_stamp,
    publicly_known,
)
from notifier.service.reads import (
    DeliveryDetail,
    Leader,
    MeetingDetail,
    current_meeting,
    delivery_detail,
    installation,
    leader,
    list_deliveries,
    list_meetings,
    list_subscribers,
    list_suppressions,
    meeting_detail,
    on_its_day,
    queue_stats,
    schema_revision,
    sent_message,
    source_report,
    subscriber_detail,
)
from notifier.service.reconcile import (
    ReconcileReport,
    file_state,
    reconcile,
)
from notifier.service.reminders import (
    EARLY_TOLERANCE,
    LATE_AFTER,
    ReminderOutcome,
    fire_reminder,
    fire_reminders,
    replan,
    replan_all,
)
from notifier.service.subscribers import (
    Unsubscribing,
    enable_endpoint,
    retire_subscriber,
    save_subscriber,
    unsubscribe,
    unsubscribe_subject,
    unsubscribe_target,
)

__all__ = [
    "EARLY_TOLERANCE",
    "LATE_AFTER",
    "RECHECK_EVERY",
    "BounceResult",
    "ChangeResult",
    "ClockMove",
    "DeliveryDetail",
    "Leader",
    "MeetingDetail",
    "Preview",
    "ReconcileReport",
    "ReminderOutcome",
    "Unsubscribing",
    "apply_change_in",
    "apply_clock_rules",
    "apply_status_change",
    "check_owner",
    "clear_suppression",
    "clock_drift",
    "create_meeting",
    "create_meeting_in",
    "create_meetings_in",
    "current_meeting",
    "delivery_detail",
    "enable_endpoint",
    "expand_fanout",
    "file_state",
    "fire_reminder",
    "fire_reminders",
    "installation",
    "is_outage",
    "leader",
    "list_deliveries",
    "list_meetings",
    "list_subscribers",
    "list_suppressions",
    "meeting_detail",
    "on_its_day",
    "outage_reason",
    "preview",
    "private_calendar",
    "prune",
    "public_calendar",
    "public_changes",
    "public_index",
    "public_meeting",
    "public_meetings",
    "public_stamp",
    "publicly_known",
    "queue_stats",
    "reconcile",
    "record_bounce",
    "redact",
    "replan",
    "replan_all",
    "replay",
    "retire_meeting",
    "retire_meeting_in",
    "retire_subscriber",
    "retry_delivery",
    "rules_preview",
    "save_subscriber",
    "schema_revision",
    "sent_message",
    "source_report",
    "subscriber_detail",
    "unsubscribe",
    "unsubscribe_subject",
    "unsubscribe_target",
    "update_details_in",
    "update_meeting_details",
]
