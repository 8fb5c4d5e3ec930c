"""PII redaction (en + zh) for everything the gateway writes down: audit rows and logs never hold the raw values.

Replaced by typed placeholders, most specific first so one value is never half-redacted by a broader rule:

    [EMAIL]   user@example.com
    [ID]      PRC resident ID numbers (18 characters, checksum verified; 15-digit first-generation ones)
    [MRN]     medical record / admission / patient numbers after a label (MRN, 病历号, 住院号, 门诊号, 病案号, …)
    [PHONE]   PRC mobiles (1[3-9] + 9 digits), PRC landlines (0xx-xxxxxxxx), international (+cc …) numbers
    [NAME]    names after a cue: Mr/Mrs/Ms/Dr/Patient/Name:, 姓名：, 患者/病人/先生/女士 forms

Names without a cue are out of reach of rules (no NER model offline); the cues cover how names appear in clinical
and service text. redact(text) → (text, counts by kind).
"""

from __future__ import annotations

import re
from collections import Counter

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def prc_id_valid(value: str) -> bool:
    """GB 11643-1999: the 18th character is the weighted checksum of the first 17 digits."""
    value = value.upper()
    if len(value) != 18 or not value[:17].isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(value[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == value[17]


_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_ID18 = re.compile(r"(?<![0-9A-Za-z])[1-9]\d{5}(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[0-9Xx]"
                   r"(?![0-9A-Za-z])")
_ID15 = re.compile(r"(?<!\d)[1-9]\d{5}\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}(?!\d)")
_ID_LABEL = re.compile(r"(身份证(?:号码?|号)?|ID(?: card)?(?: number| no\.?)?)\s*[:：#]?\s*$", re.IGNORECASE)
_MRN = re.compile(r"((?:MRN|medical record(?: number| no\.?)?|patient (?:ID|number|no\.?)|hospital number|"
                  r"病历号|住院号|门诊号|病案号|就诊卡号|患者编号)\s*[:：#]?\s*)([A-Za-z]{0,3}[-‐]?\d[\dA-Za-z-]{3,})",
                  re.IGNORECASE)
_PHONE_CN_MOBILE = re.compile(r"(?<!\d)(?:\+?86[-\s]?)?1[3-9]\d[-\s]?\d{4}[-\s]?\d{4}(?!\d)")
_PHONE_CN_LAND = re.compile(r"(?<!\d)0\d{2,3}[-\s]\d{7,8}(?!\d)")
_PHONE_INTL = re.compile(r"(?<![\w+])\+\d{1,3}[-\s.]?(?:\(\d{1,4}\)[-\s.]?)?\d{2,4}(?:[-\s.]\d{2,4}){1,4}(?!\d)")
_PHONE_US = re.compile(r"(?<!\d)\(?\d{3}\)?[-\s.]\d{3}[-.]\d{4}(?!\d)")
_NAME_EN = re.compile(r"\b((?:Mr|Mrs|Ms|Miss|Dr|Prof)\.?\s+|(?:[Pp]atient|[Nn]ame|[Cc]ontact)\s*[:：]\s*)"
                      r"([A-Z][a-z]+(?:[-'][A-Z][a-z]+)?(?:\s+[A-Z][a-z]+(?:[-'][A-Z][a-z]+)?){0,2})")
_NAME_ZH = re.compile(r"((?:姓名|患者姓名|联系人|病人|患者)\s*[:：]?\s*)([\u4e00-\u9fff]{2,3})"
                      r"(?=[，,。；;、\s（(]|$|先生|女士)")
_NAME_ZH_TITLE = re.compile(r"([\u4e00-\u9fff])(先生|女士)")   # 王先生, 李女士 (no word breaks in Chinese)
_COMMON_ZH_SURNAMES = set("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘"
                          "于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤")


def _ids(text: str, counts: Counter) -> str:
    def id18(match: re.Match) -> str:
        if prc_id_valid(match.group(0)):
            counts["id"] += 1
            return "[ID]"
        return match.group(0)

    text = _ID18.sub(id18, text)

    def id15(match: re.Match) -> str:   # first-generation IDs have no checksum: only after an ID label
        if _ID_LABEL.search(text[max(0, match.start() - 24):match.start()]):
            counts["id"] += 1
            return "[ID]"
        return match.group(0)

    return _ID15.sub(id15, text)


def _sub(pattern: re.Pattern, text: str, kind: str, counts: Counter, keep_prefix: bool = False) -> str:
    def replace(match: re.Match) -> str:
        counts[kind] += 1
        return (match.group(1) if keep_prefix else "") + f"[{kind.upper()}]"

    return pattern.sub(replace, text)


def redact(text: str | None) -> tuple[str, Counter]:
    """The text with every recognised PII value replaced by its placeholder, and how many of each kind."""
    counts: Counter = Counter()
    if not text:
        return text or "", counts
    text = _sub(_EMAIL, text, "email", counts)
    text = _ids(text, counts)
    text = _sub(_MRN, text, "mrn", counts, keep_prefix=True)
    for pattern in (_PHONE_CN_MOBILE, _PHONE_CN_LAND, _PHONE_INTL, _PHONE_US):
        text = _sub(pattern, text, "phone", counts)
    text = _sub(_NAME_EN, text, "name", counts, keep_prefix=True)

    def cued(match: re.Match) -> str:   # 姓名：any name; 患者/病人/联系人 + a name that starts with a surname
        if match.group(1).startswith(("姓名", "患者姓名")) or match.group(2)[0] in _COMMON_ZH_SURNAMES:
            counts["name"] += 1
            return f"{match.group(1)}[NAME]"
        return match.group(0)

    text = _NAME_ZH.sub(cued, text)

    def titled(match: re.Match) -> str:   # 王先生, 李女士: a surname before a title
        if match.group(1)[0] in _COMMON_ZH_SURNAMES:
            counts["name"] += 1
            return f"[NAME]{match.group(2)}"
        return match.group(0)

    return _NAME_ZH_TITLE.sub(titled, text), counts


def redact_text(text: str | None) -> str | None:
    return None if text is None else redact(text)[0]
