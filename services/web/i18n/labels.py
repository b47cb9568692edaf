"""The names both audiences read: statuses, timeline entries, actions, clocks and their states."""

from services.web.i18n.lang import Texts

# Timeline entries that keep the appeal's status and say what happened by their type.
TIMELINE_TYPES: Texts = {
    "appeal.extension_requested.v1": {"zh": "申请延期", "en": "Extension requested"},
    "appeal.extension_approved.v1": {"zh": "同意延期", "en": "Extension approved"},
    "appeal.extension_rejected.v1": {"zh": "不同意延期", "en": "Extension rejected"},
    "appeal.transfer_requested.v1": {"zh": "申请转办", "en": "Transfer requested"},
    "appeal.transfer_refused.v1": {"zh": "不同意转办", "en": "Transfer refused"},
    "appeal.decline_overruled.v1": {"zh": "退单不成立，退回原部门", "en": "Decline overruled"},
    "appeal.decline_confirmed.v1": {"zh": "退单成立", "en": "Decline confirmed"},
    "appeal.urged.v1": {"zh": "协调办公室催办", "en": "Urged by the office"},
    "appeal.contributed.v1": {"zh": "协办部门提交意见", "en": "A co-handler contributed"},
    "appeal.visit_due.v1": {"zh": "发送满意度回访问卷", "en": "Satisfaction survey sent"},
    "appeal.visited.v1": {"zh": "协调办公室回访", "en": "Return visit by the office"},
}

# Entries the coordinating office acts in: the timeline names the acting department (the office, or the lead that
# asked), not the lead after the step. The survey goes by itself (its actor is `system`): it names the lead.
ACTED_BY: frozenset[str] = frozenset(TIMELINE_TYPES) - {"appeal.visit_due.v1"}
# What the company's page leaves out: the office's supervision of the departments is internal.
INTERNAL_TYPES: frozenset[str] = frozenset(
    {
        "appeal.transfer_requested.v1",
        "appeal.transfer_refused.v1",
        "appeal.decline_confirmed.v1",
        "appeal.urged.v1",
        "appeal.contributed.v1",
    }
)
# ... and reads as the step it is for the company: the appeal back with a department.
AS_STATUS_FOR_COMPANY: frozenset[str] = frozenset({"appeal.decline_overruled.v1"})

STATUS: Texts = {
    "submitted": {"zh": "已提交", "en": "submitted"},
    "routed": {"zh": "已分派", "en": "routed"},
    "accepted": {"zh": "已受理", "en": "accepted"},
    "declined": {"zh": "已退回", "en": "declined"},
    "rerouted": {"zh": "已改派", "en": "rerouted"},
    "transferred": {"zh": "已转办", "en": "transferred"},
    "info_requested": {"zh": "待补充材料", "en": "information requested"},
    "resolved": {"zh": "已办结", "en": "resolved"},
    "confirmed": {"zh": "企业已确认", "en": "confirmed"},
    "reopened": {"zh": "重新办理", "en": "reopened"},
    "closed": {"zh": "已关闭", "en": "closed"},
    "rejected": {"zh": "不予受理", "en": "rejected"},
}

ACTIONS: Texts = {
    "accept": {"zh": "受理", "en": "Accept"},
    "decline": {"zh": "退回（非本部门职责）", "en": "Decline with guidance"},
    "request_info": {"zh": "要求补充材料", "en": "Request information"},
    "resolve": {"zh": "办结", "en": "Resolve"},
    "transfer": {"zh": "转办", "en": "Transfer"},
    "add_cohandler": {"zh": "增加协办部门", "en": "Add a co-handler"},
    "request_extension": {"zh": "申请延期", "en": "Request an extension"},
    "approve_extension": {"zh": "同意延期", "en": "Approve the extension"},
    "reject_extension": {"zh": "不同意延期", "en": "Reject the extension"},
    "request_transfer": {"zh": "申请协调办公室转办", "en": "Ask the office to transfer it"},
    "grant_transfer": {"zh": "同意转办", "en": "Grant the transfer"},
    "refuse_transfer": {"zh": "不同意转办", "en": "Refuse the transfer"},
    "overrule_decline": {"zh": "退单不成立，退回原部门", "en": "Overrule: return it"},
    "confirm_decline": {"zh": "退单成立", "en": "Confirm the decline"},
    "urge": {"zh": "催办", "en": "Urge"},
    "contribute": {"zh": "提交协办意见", "en": "Send the contribution"},
}

CLOCKS: Texts = {
    "scope": {"zh": "确认职责", "en": "Say whether it is ours"},
    "response": {"zh": "首次答复", "en": "First response"},
    "resolution": {"zh": "办结", "en": "Resolution"},
    "contribution": {"zh": "协办意见", "en": "Contribution"},
}


STATES: Texts = {
    "running": {"zh": "计时中", "en": "running"},
    "paused": {"zh": "已暂停", "en": "paused"},
    "met": {"zh": "按时完成", "en": "met"},
    "breached": {"zh": "已超时", "en": "breached"},
}
