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
from notifier.service.common import (
    check_owner,
)
from notifier.service.deliveries import (
    prune,
    replay,
    retry_delivery,
)
from notifier.service.fanout import (
    expand_fanout,
)
from notifier.service.preview import (
    preview,
)
from notifier.service.reads import (
    DeliveryDetail,
    MeetingDetail,
    current_meeting,
    delivery_detail,
    installation,
    meeting_detail,
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
    retire_subscriber,
    save_subscriber,
)

__all__ = [
    "EARLY_TOLERANCE",
    "LATE_AFTER",
    "BounceResult",
    "ChangeResult",
    "DeliveryDetail",
    "MeetingDetail",
    "ReconcileReport",
    "ReminderOutcome",
    "apply_change_in",
    "apply_status_change",
    "check_owner",
    "create_meeting",
    "create_meeting_in",
    "create_meetings_in",
    "current_meeting",
    "delivery_detail",
    "expand_fanout",
    "file_state",
    "fire_reminder",
    "fire_reminders",
    "installation",
    "meeting_detail",
    "preview",
    "prune",
    "reconcile",
    "record_bounce",
    "replan",
    "replan_all",
    "replay",
    "retire_meeting",
    "retire_meeting_in",
    "retire_subscriber",
    "retry_delivery",
    "save_subscriber",
    "source_report",
    "subscriber_detail",
    "update_details_in",
    "update_meeting_details",
]
