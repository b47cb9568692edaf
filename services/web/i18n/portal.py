"""What the company portal says: the submit form, the phone's code, the lost link, the appeal's page (following it,
answering, feedback, the contact)."""

from services.web.i18n.lang import Texts

PORTAL: Texts = {
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
        "承办部门可以看到这些信息，平台运营人员每次查阅都会留下记录。诉求办结后，企业服务协调办公室会请您评价办理结果，"
        "未评价的将致电联系人回访。"
        "您可以在本诉求的页面查看和更正联系人。诉求办结180天后，联系人信息即被删除；"
        "您也可以要求提前删除（诉求仍在办理的，办结时删除）。",
        "en": "The contact's name, phone and e-mail serve only to handle this appeal and to tell you how it goes. "
        "The departments handling it see them; each time a platform operator reads them, the reading is logged. "
        "After the resolution the enterprise service coordination office asks you to rate it, and calls the "
        "contact back (回访) if you have not answered. "
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
    # The return visit (回访): the feedback form is the survey; the office calls those who leave it unanswered
    # (config/assessment.yaml, return_visits.due_after and call_after).
    "feedback_is_visit": {
        "zh": "您在这里的评价就是本诉求的满意度回访。办结后{due}，我们会通过短信或微信把本页链接发给联系人；"
        "此后{call}内仍未评价的，企业服务协调办公室将在工作时间致电联系人回访，请留意来电。",
        "en": "Your answer here is this appeal's return visit (回访). {due} after the resolution we send this page's "
        "link to the contact by SMS or WeChat; if there is no answer {call} later, the enterprise service "
        "coordination office calls the contact in office hours: please expect the call.",
    },
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
        "zh": "承办部门通过以下联系人与您联系，办理进展也发送到这里；办结后的回访电话也打给这位联系人。",
        "en": "The departments reach you through this contact, and news of the appeal goes to it; so does the "
        "office's return visit call after the resolution.",
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
}
