"""What the pages say, in Chinese (the default) and English, and times left said in words."""

import re

from services.web.i18n.labels import (
    ACTED_BY,
    ACTIONS,
    AS_STATUS_FOR_COMPANY,
    CLOCKS,
    INTERNAL_TYPES,
    STATES,
    STATUS,
    TIMELINE_TYPES,
)
from services.web.i18n.lang import LANGS, Lang, Texts
from services.web.i18n.portal import PORTAL
from services.web.i18n.visits import CAUSES, OUTCOMES, VISIT_STATES, VISIT_TABS, VISITS
from services.web.i18n.workbench import EXTENSION_STATES, QUEUE_STATES, SEND_BACK_STATES, URGE_LEVELS, WORKBENCH

__all__ = [
    "ACTED_BY",
    "ACTIONS",
    "AS_STATUS_FOR_COMPANY",
    "CAUSES",
    "CLOCKS",
    "EXTENSION_STATES",
    "INTERNAL_TYPES",
    "LANGS",
    "MESSAGES",
    "OUTCOMES",
    "QUEUE_STATES",
    "SEND_BACK_STATES",
    "STATES",
    "STATUS",
    "TIMELINE_TYPES",
    "URGE_LEVELS",
    "VISIT_STATES",
    "VISIT_TABS",
    "Lang",
    "duration",
    "label",
    "t",
    "time_left",
    "urge_level",
]

# The texts of both audiences under one key space; their keys are distinct (one in two would keep the later table's
# text).
MESSAGES: Texts = {**PORTAL, **WORKBENCH, **VISITS}


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
