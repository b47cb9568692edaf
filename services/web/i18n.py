"""What the pages say, in Chinese (the default) and English, and times left said in words."""

import re
from typing import Literal

Lang = Literal["zh", "en"]
LANGS: tuple[Lang, ...] = ("zh", "en")

MESSAGES: dict[str, dict[Lang, str]] = {
    "site": {"zh": "企业诉求服务平台", "en": "Enterprise appeals"},
    "switch": {"zh": "English", "en": "中文"},
    "new_appeal": {"zh": "提交诉求", "en": "Submit an appeal"},
    "new_appeal_intro": {
        "zh": "请说明企业遇到的困难，我们会交给负责的部门，并在规定时限内答复。",
        "en": "Tell us the difficulty your company faces; the responsible department answers within fixed deadlines.",
    },
    "company": {"zh": "企业信息", "en": "The company"},
    "enterprise.uscc": {"zh": "统一社会信用代码", "en": "Unified social credit code"},
    "enterprise.name": {"zh": "企业名称", "en": "Company name"},
    "enterprise.employees": {"zh": "职工人数", "en": "Employees"},
    "enterprise.industry": {"zh": "行业", "en": "Industry"},
    "enterprise.district": {"zh": "所在区", "en": "District"},
    "contact": {"zh": "联系人", "en": "Who we answer"},
    "contact.name": {"zh": "联系人姓名", "en": "Contact name"},
    "contact.phone": {"zh": "手机号码", "en": "Mobile phone"},
    "contact.email": {"zh": "电子邮箱（选填）", "en": "E-mail (optional)"},
    "code": {"zh": "短信验证码", "en": "Code sent by SMS"},
    "send_code": {"zh": "获取验证码", "en": "Send me a code"},
    "code_hint": {
        "zh": "为防止冒用，提交前需验证手机号：点击“获取验证码”，把短信中的6位数字填在这里。",
        "en": "To stop abuse, the phone is proven before sending: ask for a code and type its 6 digits here.",
    },
    "code_sent": {"zh": "验证码已发送，10分钟内有效。", "en": "A code is on its way; it works for 10 minutes."},
    "code_missing": {"zh": "请填写短信中的6位验证码", "en": "Type the 6 digits of the code sent to the phone"},
    "code_wrong": {"zh": "验证码错误或已过期，请重新获取", "en": "The code is wrong or expired; ask for a new one"},
    "phone_proven": {"zh": "手机号已验证", "en": "Phone proven"},
    "lost": {"zh": "找回查询链接", "en": "Get my link again"},
    "lost_intro": {
        "zh": "填写诉求编号和提交时留的手机号，查询链接将以短信发送到该手机。",
        "en": "Give the appeal's number and the phone it was submitted with; the link goes to that phone by SMS.",
    },
    "appeal_id": {"zh": "诉求编号", "en": "Appeal number"},
    "appeal_id_wrong": {"zh": "诉求编号为26位字母和数字", "en": "An appeal number has 26 letters and digits"},
    "phone": {"zh": "手机号码", "en": "Mobile phone"},
    "link_sent": {
        "zh": "如果手机号与诉求一致，查询链接已通过短信发送。",
        "en": "If the phone is the appeal's, the link is on its way by SMS.",
    },
    "matter": {"zh": "诉求内容", "en": "The matter"},
    "category": {"zh": "诉求类别", "en": "Category"},
    "title": {"zh": "标题", "en": "Title"},
    "description": {"zh": "具体情况", "en": "Description"},
    "attachments": {"zh": "附件链接（每行一个，选填）", "en": "Links to documents (one per line, optional)"},
    "department": {"zh": "指定部门（选填）", "en": "Choose a department (optional)"},
    "department_any": {"zh": "由平台分派", "en": "Let the platform route it"},
    "department_hint": {
        "zh": "指定的部门在6小时内确认是否属于其职责；如不属于，平台将重新分派。",
        "en": "A chosen department says within 6 hours whether the matter is its own; if not, the platform routes it.",
    },
    "privacy": {"zh": "个人信息使用说明", "en": "How we use your personal data"},
    # What docs/privacy.md says, briefly; the retention is intake's default (INTAKE_CONTACT_RETENTION, P180D).
    "privacy_text": {
        "zh": "您填写的联系人姓名、手机号码和邮箱仅用于办理本诉求和向您告知办理进展。"
        "承办部门可以看到这些信息，平台运营人员每次查阅都会留下记录；企业服务协调办公室可能与您联系回访。"
        "您可以在本诉求的页面查看和更正联系人。诉求办结180天后，联系人信息即被删除；"
        "您也可以要求提前删除（诉求仍在办理的，办结时删除）。",
        "en": "The contact's name, phone and e-mail serve only to handle this appeal and to tell you how it goes. "
        "The departments handling it see them; each time a platform operator reads them, the reading is logged. "
        "The enterprise service coordination office may call you back. "
        "You can see and correct the contact on your appeal's page. "
        "It is erased 180 days after the appeal closes, or sooner if you ask "
        "(while the appeal is still being handled, when it closes).",
    },
    "consent": {
        "zh": "我已阅读并同意上述个人信息使用说明",
        "en": "I have read how my personal data is used and agree",
    },
    "consent_missing": {
        "zh": "请先阅读并同意个人信息使用说明",
        "en": "Please read and agree to how your personal data is used",
    },
    "submit": {"zh": "提交", "en": "Submit"},
    "invalid": {"zh": "填写内容不符合要求", "en": "Not valid"},
    "fix_fields": {"zh": "请修改标出的内容后再提交。", "en": "Please correct the marked fields and submit again."},
    "submitted": {"zh": "诉求已提交", "en": "Your appeal is in"},
    "keep_link": {
        "zh": "请保存下面的链接，凭它查看办理进展（短信中也会发送）：",
        "en": "Keep this link to follow your appeal (it also comes by SMS):",
    },
    "appeal": {"zh": "诉求", "en": "Appeal"},
    "status": {"zh": "状态", "en": "Status"},
    "lead": {"zh": "承办部门", "en": "Handled by"},
    "cohandlers": {"zh": "协办部门", "en": "Also working on it"},
    "not_yet": {"zh": "正在分派", "en": "being routed"},
    "submitted_at": {"zh": "提交时间", "en": "Submitted"},
    "deadline": {"zh": "办结时限", "en": "Resolution due"},
    "deadlines": {"zh": "时限", "en": "Deadlines"},
    "timeline": {"zh": "办理经过", "en": "What happened"},
    "resolution": {"zh": "办理结果", "en": "Resolution"},
    "policies": {"zh": "适用政策", "en": "Policies that apply"},
    "cited": {"zh": "引用政策", "en": "Policies cited"},
    "guidance": {"zh": "部门意见", "en": "The department's guidance"},
    "info_needed": {"zh": "部门需要您补充材料", "en": "The department needs more information"},
    "information": {"zh": "补充内容", "en": "Your answer"},
    "send": {"zh": "发送", "en": "Send"},
    "feedback": {"zh": "您对办理结果满意吗？", "en": "Are you satisfied with the resolution?"},
    "solved_yes": {"zh": "问题已解决", "en": "Yes, it is solved"},
    "solved_no": {"zh": "问题未解决，请重新办理", "en": "No, please look at it again"},
    "satisfaction": {"zh": "满意度（1-5分）", "en": "Satisfaction (1 to 5)"},
    "comment": {"zh": "意见（选填）", "en": "Comment (optional)"},
    "thanks": {"zh": "已收到，谢谢。", "en": "Received, thank you."},
    "need_link": {
        "zh": "请使用短信中的链接打开您的诉求。",
        "en": "Open your appeal with the link from your SMS.",
    },
    "wrong_link": {"zh": "链接无效或已过期。", "en": "This link does not open this appeal."},
    "unavailable": {"zh": "服务暂时繁忙", "en": "The service is busy"},
    "try_again": {
        "zh": "请一分钟后再试。您填写的内容没有丢失，返回上一页即可。",
        "en": "Please try again in a minute. What you typed is not lost: go back to the page.",
    },
    "refused": {"zh": "无法执行", "en": "Not possible"},
    "bad_form": {
        "zh": "表单已过期，请刷新页面后重新提交。",
        "en": "This form has expired; reload the page and send it again.",
    },
    "not_found": {"zh": "未找到", "en": "Not found"},
    "contact_kept": {"zh": "您的联系人", "en": "Your contact"},
    "contact_intro": {
        "zh": "承办部门通过以下联系人与您联系，办理进展也发送到这里。",
        "en": "The departments reach you through this contact, and news of the appeal goes to it.",
    },
    "email": {"zh": "电子邮箱", "en": "E-mail"},
    "none_given": {"zh": "未填写", "en": "none given"},
    "correct_contact": {"zh": "更正联系人", "en": "Correct the contact"},
    "correct": {"zh": "保存更正", "en": "Save the correction"},
    "contact_corrected": {
        "zh": "联系人已更正，承办部门和后续通知将使用新的联系方式。",
        "en": "The contact is corrected: the departments and our messages use the new one.",
    },
    "contact_erased": {
        "zh": "联系人信息已于 {at} 删除，平台不再保存，也无法更正。",
        "en": "The contact was erased on {at}: the platform keeps it no more, and there is nothing left to correct.",
    },
    "contact_unavailable": {
        "zh": "联系人暂时无法显示，请稍后刷新页面。",
        "en": "The contact cannot be shown just now; reload the page in a minute.",
    },
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

QUEUE_STATES: dict[str, dict[Lang, str]] = {
    "overdue": {"zh": "已超时", "en": "Overdue"},
    "at_risk": {"zh": "即将超时", "en": "At risk"},
    "extension_pending": {"zh": "延期待审批", "en": "Extension pending"},
    "sent_back": {"zh": "退单待审核", "en": "Sent back"},
    "transfer_requested": {"zh": "申请转办", "en": "Transfer requested"},
    "all": {"zh": "全部", "en": "All"},
}

SEND_BACK_STATES: dict[str, dict[Lang, str]] = {
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

EXTENSION_STATES: dict[str, dict[Lang, str]] = {
    "pending": {"zh": "待审批", "en": "pending"},
    "approved": {"zh": "已同意", "en": "approved"},
    "rejected": {"zh": "未同意", "en": "rejected"},
    "lapsed": {"zh": "已失效（原时限前未获审批）", "en": "lapsed (not answered before the old due time)"},
}

# Timeline entries that keep the appeal's status and say what happened by their type.
TIMELINE_TYPES: dict[str, dict[Lang, str]] = {
    "appeal.extension_requested.v1": {"zh": "申请延期", "en": "Extension requested"},
    "appeal.extension_approved.v1": {"zh": "同意延期", "en": "Extension approved"},
    "appeal.extension_rejected.v1": {"zh": "不同意延期", "en": "Extension rejected"},
    "appeal.transfer_requested.v1": {"zh": "申请转办", "en": "Transfer requested"},
    "appeal.transfer_refused.v1": {"zh": "不同意转办", "en": "Transfer refused"},
    "appeal.decline_overruled.v1": {"zh": "退单不成立，退回原部门", "en": "Decline overruled"},
    "appeal.decline_confirmed.v1": {"zh": "退单成立", "en": "Decline confirmed"},
    "appeal.urged.v1": {"zh": "协调办公室催办", "en": "Urged by the office"},
    "appeal.contributed.v1": {"zh": "协办部门提交意见", "en": "A co-handler contributed"},
}

# Entries the coordinating office acts in: the timeline names the acting department (the office, or the lead that
# asked), not the lead after the step.
ACTED_BY: frozenset[str] = frozenset(TIMELINE_TYPES)
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

STATUS: dict[str, dict[Lang, str]] = {
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

ACTIONS: dict[str, dict[Lang, str]] = {
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

CLOCKS: dict[str, dict[Lang, str]] = {
    "scope": {"zh": "确认职责", "en": "Say whether it is ours"},
    "response": {"zh": "首次答复", "en": "First response"},
    "resolution": {"zh": "办结", "en": "Resolution"},
    "contribution": {"zh": "协办意见", "en": "Contribution"},
}


STATES: dict[str, dict[Lang, str]] = {
    "running": {"zh": "计时中", "en": "running"},
    "paused": {"zh": "已暂停", "en": "paused"},
    "met": {"zh": "按时完成", "en": "met"},
    "breached": {"zh": "已超时", "en": "breached"},
}


def t(lang: Lang, key: str) -> str:
    """The message `key` in `lang`; the key itself when the catalogue lacks it."""
    entry = MESSAGES.get(key)
    return entry[lang] if entry else key


def label(table: dict[str, dict[Lang, str]], lang: Lang, key: str) -> str:
    """A status, action or clock name in `lang`."""
    entry = table.get(key)
    return entry[lang] if entry else key.replace("_", " ")


def urge_level(lang: Lang, level: int | None) -> str:
    """An urging level in words: '二级（催办）', 'Level 2 (催办, pressed)'; a level configured beyond these by its
    number."""
    if not level:
        return ""
    entry = URGE_LEVELS.get(level)
    return entry[lang] if entry else (f"{level}级" if lang == "zh" else f"Level {level}")


def time_left(lang: Lang, seconds: float | None) -> str:
    """'2 days 3 hours left' / 'overdue by 40 minutes', in `lang`."""
    if seconds is None:
        return ""
    late = seconds < 0
    minutes = int(abs(seconds) // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if lang == "zh":
        parts = [f"{days}天" if days else "", f"{hours}小时" if hours else ""]
        parts.append(f"{mins}分钟" if mins and not days else "")
        said = "".join(parts) or "不到1分钟"
        return f"已超时{said}" if late else f"剩余{said}"
    words = [
        f"{days} day{'s' if days != 1 else ''}" if days else "",
        f"{hours} hour{'s' if hours != 1 else ''}" if hours else "",
        f"{mins} minute{'s' if mins != 1 else ''}" if mins and not days else "",
    ]
    said = " ".join(w for w in words if w) or "less than a minute"
    return f"overdue by {said}" if late else f"{said} left"


_UNITS: dict[str, dict[Lang, tuple[str, str]]] = {
    "wd": {"zh": ("个工作日", "个工作日"), "en": ("working day", "working days")},
    "d": {"zh": ("天", "天"), "en": ("day", "days")},
    "h": {"zh": ("小时", "小时"), "en": ("hour", "hours")},
    "m": {"zh": ("分钟", "分钟"), "en": ("minute", "minutes")},
    "s": {"zh": ("秒", "秒"), "en": ("second", "seconds")},
}


def duration(lang: Lang, text: str) -> str:
    """A configured duration ('10wd', '6h') in words: '10个工作日', '10 working days'; as written if it is none."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(wd|d|h|m|s)", text.strip())
    if not match:
        return text
    amount, unit = match.group(1), match.group(2)
    one, many = _UNITS[unit][lang]
    return f"{amount}{one}" if lang == "zh" else f"{amount} {one if amount == '1' else many}"
