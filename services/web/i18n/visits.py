"""What the workbench says of return visits (回访), redos (重办) and the month's scorecard: the office's visit tasks
and their form, a department's redos and its own assessment; and the names of visit tabs, states, outcomes and
causes."""

from services.web.i18n.lang import Texts

VISITS: Texts = {
    # The office's page of visit tasks.
    "return_visits": {"zh": "回访", "en": "Return visits"},
    "visits_intro": {
        "zh": "诉求办结后{due}，企业收到满意度回访问卷（即诉求查询页面的评价表）；问卷发出{call}后仍未评价的，"
        "由协调办公室在工作时间电话回访。{attempts}次未联系上，或问卷发出{unreached}后仍未回访的，记为未联系上，"
        "不计为满意。",
        "en": "{due} after a resolution the company gets the survey (the feedback form of its appeal's page); "
        "{call} later the office calls those still silent, in office hours. {attempts} failed calls, or {unreached} "
        "after the survey without a visit, end it as unreached: shown, never counted as satisfied.",
    },
    "visit_times_col": {"zh": "回访时间", "en": "When"},
    "resolution_contact_col": {"zh": "办理结果与联系人", "en": "Resolution and contact"},
    "attempts_col": {"zh": "回访记录", "en": "Attempts"},
    "record_col": {"zh": "记录回访", "en": "Record"},
    "survey_at": {"zh": "问卷发送", "en": "Survey"},
    "call_from": {"zh": "电话回访自", "en": "Call from"},
    "unreached_at": {"zh": "未联系上截止", "en": "Unreached at"},
    "ended_at": {"zh": "结束于", "en": "Ended"},
    "call_now": {"zh": "应电话回访", "en": "Call now"},
    "visit_round": {"zh": "第{n}轮回访", "en": "Round {n}"},
    "redo_times": {"zh": "已重办{n}次", "en": "redone {n}×"},
    "contact_not_shown": {"zh": "回访已结束，联系人不再显示", "en": "The visit ended: the contact is not shown"},
    "no_resolution": {"zh": "（无办理结果）", "en": "(no resolution text)"},
    "no_attempts": {"zh": "尚无回访记录", "en": "No attempt yet"},
    "attempts_left": {"zh": "还可尝试{n}次", "en": "{n} attempts left"},
    "resolved_on": {"zh": "办结于", "en": "Resolved"},
    "visit_result": {"zh": "回访结果", "en": "Result"},
    "score_n": {"zh": "{n}分", "en": "score {n}"},
    "visitor": {"zh": "回访人", "en": "Visitor"},
    "reached_question": {"zh": "是否联系上企业", "en": "Did you reach the company?"},
    "reached_yes": {"zh": "联系上", "en": "Reached"},
    "reached_no": {"zh": "未联系上", "en": "Not reached"},
    "score_label": {
        "zh": "满意度评分（联系上时填写：5满意，4基本满意，1-3不满意）",
        "en": "Score (when reached: 5 satisfied, 4 basically, 1-3 unsatisfied)",
    },
    "outcome_label": {"zh": "评价（选填，须与评分一致）", "en": "Outcome (optional; must agree with the score)"},
    "outcome_from_score": {"zh": "按评分", "en": "From the score"},
    "cause_label": {"zh": "不满意的原因（不满意时必填）", "en": "Why unsatisfied (required when unsatisfied)"},
    "cause_review_label": {"zh": "原因认定", "en": "Whose is the cause?"},
    "visit_note": {"zh": "备注（记入办理经过）", "en": "Note (goes into the timeline)"},
    "record_visit": {"zh": "记录回访", "en": "Record the attempt"},
    "review_intro": {
        "zh": "企业反馈问题未解决，诉求已退回承办部门重办。如原因不在部门（如政策不允许），请认定为部门以外："
        "诉求即关闭，不计入该部门的满意率和重办。",
        "en": "The company said it is not resolved, and the appeal went back to its lead as a redo. If the cause lies "
        "outside the department (the policy does not allow it), say so: the appeal closes and counts neither in the "
        "department's satisfaction nor as its redo.",
    },
    "record_review": {"zh": "认定原因", "en": "Record the cause"},
    "visits_nothing": {"zh": "没有回访任务。", "en": "No visit tasks."},
    # The form's own checks.
    "visitor_missing": {"zh": "请填写回访人姓名", "en": "Give the visitor's name"},
    "visitor_too_long": {"zh": "回访人姓名最多100个字", "en": "At most 100 characters"},
    "reached_missing": {"zh": "请选择是否联系上企业", "en": "Say whether you reached the company"},
    "visit_note_too_long": {"zh": "备注最多2000个字", "en": "At most 2000 characters"},
    "score_bad": {"zh": "评分为1至5分", "en": "A score is 1 to 5"},
    "outcome_bad": {"zh": "请选择满意、基本满意或不满意", "en": "Choose satisfied, basically satisfied or unsatisfied"},
    "cause_bad": {"zh": "请选择原因在部门或部门以外", "en": "Choose the department or outside it"},
    "score_or_outcome_missing": {
        "zh": "联系上企业时，请填写评分或评价",
        "en": "When the company was reached, give a score or an outcome",
    },
    "score_outcome_disagree": {
        "zh": "评价与评分不一致：5分为满意，4分为基本满意，1-3分为不满意",
        "en": "The outcome does not agree with the score: 5 satisfied, 4 basically, 1-3 unsatisfied",
    },
    "cause_required": {
        "zh": "企业不满意时，请认定原因在部门（重办）还是部门以外",
        "en": "When the company is unsatisfied, say whether the cause is the department's (a redo) or outside it",
    },
    "cause_required_review": {
        "zh": "请认定原因在部门还是部门以外",
        "en": "Say whether the cause is the department's or outside it",
    },
    # What a recorded attempt did (visits.RECORDED).
    "visit_done_not_reached": {
        "zh": "已记录：未联系上，回访继续",
        "en": "Recorded: not reached; the visit stays open",
    },
    "visit_done_unreached": {
        "zh": "已记录：多次未联系上，回访结束（未联系上，不计为满意），诉求已关闭",
        "en": "Recorded: not reached again; the visit ended unreached (never counted as satisfied) and the appeal "
        "closed",
    },
    "visit_done_closed": {"zh": "已记录回访，诉求已关闭", "en": "Visit recorded; the appeal closed"},
    "visit_done_outside": {
        "zh": "已记录：原因在部门以外，诉求已关闭，单独统计",
        "en": "Recorded: the cause lies outside the department; the appeal closed, reported apart",
    },
    "visit_done_redo": {
        "zh": "已记录：企业不满意，原因在部门，诉求已退回承办部门重办",
        "en": "Recorded: unsatisfied at the department's fault; the appeal went back to its lead as a redo",
    },
    "visit_done_redo_confirmed": {
        "zh": "已认定：原因在部门，重办继续",
        "en": "Recorded: the cause is the department's; the redo stands",
    },
    # A department's redos (重办) and its visit, on the worklist and the appeal's page.
    "redo_badge": {"zh": "重办", "en": "Redo"},
    "redo_n": {"zh": "第{n}次重办", "en": "redo {n}"},
    "redo_due": {"zh": "重办时限 {at}", "en": "redo due {at}"},
    "redo_notice": {
        "zh": "本诉求已退回本部门重办（第{n}次），请于{at}前重新办结。",
        "en": "This appeal is back with your department to be redone (redo {n}); resolve it again by {at}.",
    },
    "redo_supervised": {
        "zh": "重办次数已达{n}次，协调办公室督办。",
        "en": "Redone {n} times: the coordinating office supervises it.",
    },
    "visit_section": {"zh": "回访与重办", "en": "Return visit and redo"},
    "visit_state": {"zh": "回访状态", "en": "Visit"},
    "redo_count": {"zh": "重办次数", "en": "Redos"},
    "redos_open": {"zh": "重办中 {n} 件", "en": "{n} being redone"},
    # The department's line of the month's scorecard.
    "assessment": {"zh": "本月考核", "en": "This month's assessment"},
    "assessment_month": {"zh": "{month}考核", "en": "Assessment {month}"},
    "assessment_score": {"zh": "得分", "en": "Score"},
    "assessment_rank": {"zh": "排名 {rank}/{n}", "en": "Rank {rank} of {n}"},
    "assessment_not_ranked": {
        "zh": "本月承办不足{n}件，列示不排名",
        "en": "Fewer than {n} appeals led this month: listed, not ranked",
    },
    "assessment_no_score": {"zh": "暂无得分", "en": "no score yet"},
    "assessment_unavailable": {
        "zh": "本月考核暂无法查看。",
        "en": "This month's assessment cannot be shown just now.",
    },
    "red_list": {"zh": "红榜", "en": "Red list"},
    "black_list": {"zh": "黑榜", "en": "Black list"},
    "on_red_list": {"zh": "本部门上红榜", "en": "Your department is on the red list"},
    "on_black_list": {"zh": "本部门上黑榜", "en": "Your department is on the black list"},
    "response_rate": {"zh": "响应率", "en": "Response rate"},
    "resolution_rate": {"zh": "办结率", "en": "Resolution rate"},
    "satisfaction_rate": {"zh": "满意率", "en": "Satisfaction rate"},
    "breaches_n": {"zh": "超时 {n}", "en": "{n} breaches"},
    "redos_n": {"zh": "重办 {n}", "en": "{n} redos"},
    "outside_n": {"zh": "部门以外原因不满意 {n}（单列）", "en": "{n} unsatisfied for outside reasons (apart)"},
    "unreached_n": {"zh": "未联系上 {n}（单列）", "en": "{n} unreached (apart)"},
}

VISIT_TABS: Texts = {
    "to_call": {"zh": "待电话回访", "en": "To call now"},
    "open": {"zh": "全部未结回访", "en": "All open visits"},
    "review": {"zh": "企业称未解决", "en": "Company said not resolved"},
    "visited": {"zh": "已回访", "en": "Visited"},
    "answered": {"zh": "企业已评价", "en": "Answered by the company"},
    "unreached": {"zh": "未联系上", "en": "Unreached"},
}

VISIT_STATES: Texts = {
    "scheduled": {"zh": "待发送问卷", "en": "survey not sent yet"},
    "surveyed": {"zh": "问卷已发送，待评价", "en": "survey sent, awaiting an answer"},
    "review": {"zh": "企业称未解决，待认定原因", "en": "company said not resolved; cause to find"},
    "visited": {"zh": "已回访", "en": "visited"},
    "answered": {"zh": "企业已评价", "en": "answered by the company"},
    "unreached": {"zh": "未联系上", "en": "unreached"},
    "unselected": {"zh": "未抽中回访", "en": "not selected for a visit"},
}

OUTCOMES: Texts = {
    "satisfied": {"zh": "满意", "en": "satisfied"},
    "basically_satisfied": {"zh": "基本满意", "en": "basically satisfied"},
    "unsatisfied": {"zh": "不满意", "en": "unsatisfied"},
    "unreached": {"zh": "未联系上", "en": "unreached"},
}

CAUSES: Texts = {
    "department": {"zh": "原因在部门（重办）", "en": "the department's (a redo)"},
    "outside": {"zh": "部门以外（如政策不允许）", "en": "outside the department (the policy does not allow it)"},
}
