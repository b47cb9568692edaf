"""What the department workbench and the coordinating office's page say: signing in, the worklist, an appeal's
actions, extensions (延期), the office's queue and decisions, supervision, co-handlers' contributions; and the
names of the queue's states, send-backs, urging levels and extensions."""

from services.web.i18n.lang import Lang, Texts

WORKBENCH: Texts = {
    # The workbench.
    "workbench": {"zh": "部门工作台", "en": "Department workbench"},
    "sign_in": {"zh": "登录", "en": "Sign in"},
    "sign_out": {"zh": "退出", "en": "Sign out"},
    "clerk_name": {"zh": "您的姓名", "en": "Your name"},
    "dept": {"zh": "部门", "en": "Department"},
    "dept_key": {"zh": "部门密钥", "en": "Department key"},
    "key_refused": {"zh": "该密钥不能登录此部门。", "en": "This key does not open this department."},
    "key_not_department": {
        "zh": "工作台只能用部门密钥登录；运营、管理员和渠道密钥不能登录。",
        "en": "The workbench takes a department's key only; operator, admin and channel keys do not sign in.",
    },
    "signed_in_as": {"zh": "当前用户", "en": "Signed in as"},
    "worklist": {"zh": "待办诉求", "en": "Worklist"},
    "all": {"zh": "全部", "en": "All"},
    "filter": {"zh": "筛选", "en": "Filter"},
    "nothing": {"zh": "没有诉求。", "en": "No appeals."},
    "due": {"zh": "剩余时间", "en": "Time left"},
    "overdue": {"zh": "已超时", "en": "Overdue"},
    "no_clock": {"zh": "无计时", "en": "no clock running"},
    "flags_verified": {"zh": "名单认定", "en": "Verified (government lists)"},
    "flags_declared": {"zh": "企业自报（未核实）", "en": "Declared, not verified"},
    "phone_verified": {"zh": "手机号与名录一致", "en": "Phone matches the registry"},
    "phone_unverified": {"zh": "手机号与名录不一致", "en": "Phone differs from the registry"},
    "actions": {"zh": "办理", "en": "Act"},
    "note_plan": {"zh": "办理计划", "en": "Plan"},
    "note": {"zh": "说明", "en": "Note"},
    "what_needed": {"zh": "需要补充什么", "en": "What is needed"},
    "target_department": {"zh": "目标部门", "en": "Department"},
    "policy_refs": {"zh": "引用政策编号（逗号分隔）", "en": "Policy ids cited (comma-separated)"},
    "done": {"zh": "已完成", "en": "Done"},
    "back": {"zh": "返回", "en": "Back"},
    "company_label": {"zh": "企业", "en": "Company"},
    # Extensions (延期), on the appeal's page.
    "extensions": {"zh": "延期申请", "en": "Extensions"},
    "until": {"zh": "新的办结时限（北京时间）", "en": "New due date and time (Beijing time)"},
    "extension_reason": {"zh": "延期理由", "en": "Why the department needs the time"},
    "extension_hint": {
        "zh": "当前办结时限：{due}。延期最多到原时限后{most}，每个办结时限只能延期一次，由协调办公室审批。",
        "en": "Due now: {due}. At most {most} past it, once per resolution clock; the coordinating office decides.",
    },
    "until_missing": {"zh": "请填写新的办结日期和时间", "en": "Give the new due date and time"},
    "reason_missing": {"zh": "请填写延期理由", "en": "Say why the department needs the time"},
    "waiting_office": {
        "zh": "延期申请已提交，等待协调办公室审批。",
        "en": "The extension awaits the coordinating office.",
    },
    "extended_already": {
        "zh": "本办结时限已延期，不能再次申请。",
        "en": "This resolution clock was extended already; it cannot be extended again.",
    },
    "asked_until": {"zh": "申请延期至", "en": "Asked until"},
    "due_before": {"zh": "原办结时限", "en": "Due before"},
    "asked_by": {"zh": "申请人", "en": "Asked by"},
    "decided_by": {"zh": "审批人", "en": "Decided by"},
    "office_comment": {"zh": "协调办公室意见", "en": "The office's comment"},
    "extended_from": {"zh": "原定 {at}，已延期", "en": "extended from {at}"},
    "until_at": {"zh": "延期至 {at}", "en": "until {at}"},
    # The coordinating office's page.
    "office": {"zh": "督办", "en": "Office"},
    "city_queue": {"zh": "全市督办队列", "en": "The city queue"},
    "office_only": {
        "zh": "督办页面只对协调办公室开放。",
        "en": "Only the coordinating office opens this page.",
    },
    "any": {"zh": "不限", "en": "Any"},
    "lead_dept": {"zh": "承办部门", "en": "Lead department"},
    "handling_dept": {"zh": "办理部门（承办或协办）", "en": "Department (lead or co-handler)"},
    "district": {"zh": "所在区", "en": "District"},
    "due_col": {"zh": "时限", "en": "Due"},
    "appeal_col": {"zh": "诉求", "en": "Appeal"},
    "extension_col": {"zh": "延期申请", "en": "Extension"},
    "office_actions": {"zh": "督办操作", "en": "Office actions"},
    "office_comment_label": {"zh": "审批意见（不同意时必填）", "en": "Comment (required to reject)"},
    "comment_required": {
        "zh": "不同意延期时必须填写意见，告知部门原因。",
        "en": "A rejection needs a comment: tell the department why.",
    },
    "sort_by": {"zh": "排序", "en": "Sort by"},
    "queue_order": {"zh": "默认顺序", "en": "Queue order"},
    "previous_page": {"zh": "上一页", "en": "Previous"},
    "next_page": {"zh": "下一页", "en": "Next"},
    "page_n": {"zh": "第 {n} 页", "en": "Page {n}"},
    "sorted_within": {
        "zh": "按列排序只在队列的前 {n} 条中进行，请用筛选缩小范围。",
        "en": "A column's sort covers the first {n} of the queue; narrow it with the filters.",
    },
    "decided": {"zh": "已处理", "en": "Done"},
    "no_action": {"zh": "暂无待办", "en": "Nothing to decide"},
    "requests_col": {"zh": "待审事项", "en": "Requests"},
    "urge_level_filter": {"zh": "督办等级（已超时的诉求）", "en": "Urging level (overdue appeals)"},
    "or_higher": {"zh": "及以上", "en": " or higher"},
    "urged_times": {"zh": "已催办{n}次", "en": "urged {n}×"},
    "review_send_back": {"zh": "退单审核", "en": "Review the send-back"},
    "review_comment_label": {"zh": "审核意见（选填）", "en": "Comment (optional)"},
    "sent_back_by": {"zh": "{dept}退回，已改派{to}", "en": "{dept} declined it; it went to {to}"},
    "answer_transfer": {"zh": "答复转办申请", "en": "Answer the transfer request"},
    "transfer_requested": {"zh": "申请转办", "en": "Transfer requested"},
    "suggests": {"zh": "建议转至{to}", "en": "suggests {to}"},
    "transfer_to": {"zh": "转至", "en": "Transfer to"},
    "suggested_mark": {"zh": "（部门建议）", "en": " (suggested)"},
    "transfer_comment_label": {"zh": "意见（不同意转办时必填）", "en": "Comment (required to refuse)"},
    "refusal_comment_required": {
        "zh": "不同意转办时必须填写意见，告知部门原因。",
        "en": "A refusal needs a comment: tell the department why.",
    },
    "target_missing": {"zh": "请选择要转至的部门。", "en": "Choose the department to transfer it to."},
    "urge_comment_label": {"zh": "催办意见（必填）", "en": "What the office expects, and by when (required)"},
    "urge_comment_required": {
        "zh": "催办必须填写意见，说明协调办公室的要求和时限。",
        "en": "Urging needs a comment: say what the office expects, and by when.",
    },
    "urge_lead": {"zh": "催办{lead}", "en": "Urge {lead}"},
    # The office as the city's dispatcher: moving an appeal, bringing in a co-handler.
    "office_move": {"zh": "转办至其他部门", "en": "Move it to another department"},
    "office_move_to": {"zh": "转办至", "en": "Move it to"},
    "office_move_note": {"zh": "转办说明（选填）", "en": "Note for the new lead (optional)"},
    "cohandler_to_add": {"zh": "增加为协办的部门", "en": "Department to bring in"},
    "office_cohandler_note": {"zh": "协办说明（选填）", "en": "Note for the co-handler (optional)"},
    "choose_department": {"zh": "请选择部门", "en": "Choose a department"},
    "cohandler_missing": {
        "zh": "请选择要增加的协办部门。",
        "en": "Choose the department to bring in as a co-handler.",
    },
    # Supervision on the department's pages.
    "urged_by_office": {"zh": "协调办公室已催办", "en": "Urged by the office"},
    "urgings": {"zh": "催办记录", "en": "The office's urgings"},
    "window_open": {
        "zh": "退单期限：{at}前可自行退回或转办，逾期须申请协调办公室转办。",
        "en": "Send-back window: until {at} the department may decline or transfer on its own; later it asks the "
        "coordinating office.",
    },
    "window_closed": {
        "zh": "退单期限已于{at}截止：本部门不能再自行退回或转办；如非本部门职责，请申请协调办公室转办。",
        "en": "The send-back window closed at {at}: the department can no longer decline or transfer it on its own; "
        "if it is not yours, ask the coordinating office to transfer it.",
    },
    "window_overruled": {
        "zh": "协调办公室已认定本部门退单不成立：不能再自行退回或转办；如需转办，请申请协调办公室。",
        "en": "The office overruled this department's decline: it can no longer decline or transfer it on its own; "
        "to move it, ask the coordinating office.",
    },
    "transfer_request": {"zh": "转办申请", "en": "Transfer request"},
    "suggested_department": {"zh": "建议转至", "en": "Suggested department"},
    "transfer_reason": {"zh": "转办理由", "en": "Why it is another department's"},
    "transfer_reason_missing": {"zh": "请填写转办理由", "en": "Say why the appeal is another department's"},
    "transfer_department_missing": {"zh": "请选择建议转至的部门", "en": "Choose the department to suggest"},
    "transfer_waiting": {
        "zh": "转办申请已提交，等待协调办公室处理：建议转至{to}。",
        "en": "The transfer request awaits the coordinating office: suggested {to}.",
    },
    "transfer_pending_badge": {"zh": "转办申请待处理", "en": "transfer requested"},
    "transfer_refused_notice": {"zh": "协调办公室不同意转办", "en": "The office refused the transfer"},
    "send_back_overruled_notice": {
        "zh": "协调办公室认定本部门退单不成立，诉求已退回本部门，首次答复时限自最初分派起算。",
        "en": "The office overruled this department's decline and returned the appeal to it; the first response is "
        "due from the first assignment.",
    },
    "send_back_received": {
        "zh": "{dept}退回本诉求后改派至本部门，协调办公室正在审核该退单（可能退回{dept}）。",
        "en": "{dept} declined this appeal and it came to this department; the office is reviewing the send-back "
        "(it may return it to {dept}).",
    },
    "send_back_confirmed": {"zh": "协调办公室认定{dept}退单成立。", "en": "The office confirmed {dept}'s decline."},
    "send_back": {"zh": "退单", "en": "Send-back"},
    # Co-handlers' contributions (协办意见), on the appeal's page and the co-handler's worklist.
    "contributions": {"zh": "协办意见", "en": "Contributions"},
    "contribution_intro": {
        "zh": "协办部门提出本部门意见，送承办部门（{lead}）办理参考，并记入办理经过。",
        "en": "Each co-handler sends its part to the lead ({lead}); it goes into the timeline too.",
    },
    "own_contribution_clock": {"zh": "本部门协办意见时限", "en": "Your department's contribution deadline"},
    "cohandler_clocks": {"zh": "各协办部门意见时限", "en": "Each co-handler's contribution deadline"},
    "not_timed_yet": {"zh": "尚未开始计时", "en": "not timed yet"},
    "no_contributions": {"zh": "尚无协办意见。", "en": "No contribution yet."},
    "contribution_note": {"zh": "本部门协办意见", "en": "Your department's part"},
    "contribution_links": {
        "zh": "附件链接（https，每行一个，选填，最多{n}个）",
        "en": "Links to documents (https, one per line, optional, at most {n})",
    },
    "contribution_missing": {"zh": "请填写本部门的协办意见", "en": "Write your department's part"},
    "contribution_too_long": {"zh": "协办意见最多{n}个字", "en": "At most {n} characters"},
    "link_bad": {"zh": "第{n}行不是有效的https链接：{link}", "en": "Line {n} is not an https link: {link}"},
    "links_too_many": {"zh": "链接最多{n}个", "en": "At most {n} links"},
    "contribution_due": {"zh": "协办意见截止 {at}", "en": "contribution due {at}"},
    "contribution_overdue": {"zh": "协办意见已超时（截止 {at}）", "en": "contribution overdue (was due {at})"},
    "contributed_at": {"zh": "提交于", "en": "sent"},
}

QUEUE_STATES: Texts = {
    "overdue": {"zh": "已超时", "en": "Overdue"},
    "at_risk": {"zh": "即将超时", "en": "At risk"},
    "extension_pending": {"zh": "延期待审批", "en": "Extension pending"},
    "sent_back": {"zh": "退单待审核", "en": "Sent back"},
    "transfer_requested": {"zh": "申请转办", "en": "Transfer requested"},
    "redo": {"zh": "重办督办", "en": "Redone, supervised"},
    "all": {"zh": "全部", "en": "All"},
}

SEND_BACK_STATES: Texts = {
    "pending": {"zh": "退单待审核", "en": "Send-back awaits review"},
    "overruled": {"zh": "退单不成立（已退回原部门）", "en": "Decline overruled (returned)"},
    "confirmed": {"zh": "退单成立", "en": "Decline confirmed"},
}

# The urging ladder (config/supervision.yaml): level 1 is the breach; later levels as configured.
URGE_LEVELS: dict[int, dict[Lang, str]] = {
    1: {"zh": "一级（超时）", "en": "Level 1 (breached)"},
    2: {"zh": "二级（催办）", "en": "Level 2 (催办, pressed)"},
    3: {"zh": "三级（督办）", "en": "Level 3 (督办, supervised)"},
}

EXTENSION_STATES: Texts = {
    "pending": {"zh": "待审批", "en": "pending"},
    "approved": {"zh": "已同意", "en": "approved"},
    "rejected": {"zh": "未同意", "en": "rejected"},
    "lapsed": {"zh": "已失效（原时限前未获审批）", "en": "lapsed (not answered before the old due time)"},
}
