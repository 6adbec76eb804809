"""A plan as JSON for the API and as sentences (Japanese and English) for pages and the CLI.

The API answers both languages (`message_ja`, `message_en`) and `message` in the one the request asked
for (`lang=`, else Accept-Language, else ja: broker/language.py); the pages show the page's language.

Sentences are built from the refusal's parameters, so a page in either language says the same
thing the machine-readable code does: the limit, the dates, the library's name and phone number.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from broker.holds.planner import Alternative, CardAdvice, Option, Plan, Refusal
from broker.holds.series import SeriesPlan
from yokodan import RefusalReason

__all__ = ["advice_en", "advice_ja", "date_en", "date_ja", "plan_view", "refusal_en", "refusal_ja", "series_view"]

_WEEKDAYS_JA = "月火水木金土日"


def date_ja(day: date | None) -> str:
    return f"{day.month}月{day.day}日({_WEEKDAYS_JA[day.weekday()]})" if day else "未定"


def _phone(refusal: Refusal) -> str:
    return f"（{refusal.phone}）" if refusal.phone else ""


def refusal_ja(r: Refusal) -> str:
    p, lib = r.params, r.member_name
    match r.reason:
        case RefusalReason.NO_CARD:
            return f"{lib}の利用カードをお持ちでないため予約できません{_phone(r)}"
        case RefusalReason.LIMIT_REACHED:
            what = {"av": "視聴覚資料", "books_magazines": "図書・雑誌"}.get(p.get("material_class") or "", "")
            incl = "（リクエストを含む）" if p.get("requests_counted") else ""
            return f"{lib}の{what}予約は{p['limit']}件まで{incl}です。現在{p['count']}件のため予約できません"
        case RefusalReason.DUPLICATE:
            return f"この資料はすでに{lib}で予約中です（1資料につき1件まで）"
        case RefusalReason.ALREADY_ON_LOAN:
            return f"この資料は{lib}で借りているか確保済みのため、予約は無効になります"
        case RefusalReason.OVERDUE_BLOCK:
            return f"{lib}に返却期限を過ぎた資料があるため、返却されるまで新たな予約はできません{_phone(r)}"
        case RefusalReason.CARD_EXPIRED:
            return f"{lib}の利用カードの有効期限が切れています。更新の手続きをしてください{_phone(r)}"
        case RefusalReason.CARD_INACTIVE:
            years = (p.get("inactive_after_days") or 0) // 365
            return f"{lib}の利用カードは{years}年以上利用がないため、更新の手続きが必要です{_phone(r)}"
        case RefusalReason.NOT_HOLDABLE:
            return f"{lib}のこの資料（{p.get('status_text') or p.get('material')}）は予約できません"
        case RefusalReason.NOT_RESERVABLE_ONLINE:
            return f"{lib}のこの資料はインターネットでは予約できません。電話でご相談ください{_phone(r)}"
        case RefusalReason.PICKUP_NOT_ALLOWED:
            return f"{lib}の資料は{r.branch_name or r.branch}では受け取れません"
        case RefusalReason.BRANCH_CLOSED:
            until = f"{date_ja(p.get('closed_until'))}まで" if p.get("closed_until") else ""
            return f"{r.branch_name}は{until}休館中のため受け取れません（{p.get('reason')}）{_phone(r)}"
        case RefusalReason.MEMBER_UNREACHABLE:
            return f"{lib}のシステムに接続できませんでした（{p.get('reason')}）。時間をおいて再度お試しください"
        case RefusalReason.AUTHENTICATION_FAILED:
            return f"{lib}の利用カード番号またはパスワードが正しくありません"
        case RefusalReason.PATRON_NOT_FOUND:
            return f"{lib}にこの利用カード番号の登録がありません{_phone(r)}"
        case _:
            return f"{lib}: {r.reason.value}{_phone(r)}"


def refusal_en(r: Refusal) -> str:
    p = r.params
    match r.reason:
        case RefusalReason.LIMIT_REACHED:
            return f"{r.member_name}: limit of {p['limit']} holds reached ({p['count']} now)"
        case RefusalReason.BRANCH_CLOSED:
            return f"{r.branch_name} is closed until {p.get('closed_until')}: {p.get('reason')}"
        case _:
            return f"{r.member_name}: {r.reason.value}" + (f" (phone {r.phone})" if r.phone else "")


def advice_ja(a: CardAdvice) -> str:
    gain = f"{a.gain_days}日早く" if a.gain_days else f"{date_ja(a.ready)}から"
    tel = f"（{a.phone}）" if a.phone else ""
    return f"{a.member_name}の利用カードがあれば、{gain}受け取れます{tel}"


_WEEKDAYS_EN = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def date_en(day: date | None) -> str:
    # Names spelt here, not by strftime: %a/%b follow the process locale, which a server may set to ja_JP.
    return f"{_WEEKDAYS_EN[day.weekday()]} {day.day} {_MONTHS_EN[day.month - 1]} {day.year}" if day else "not known"


def advice_en(a: CardAdvice) -> str:
    """The same advice as `advice_ja`, in English: the library, the gain (or the first day), its phone."""
    if a.gain_days:
        gain = f"{a.gain_days} day{'s' if a.gain_days != 1 else ''} sooner"
    else:
        gain = f"from {date_en(a.ready)}"
    tel = f" (phone {a.phone})" if a.phone else ""
    return f"With a library card of {a.member_name}, you could collect it {gain}{tel}"


ADVICE = {"ja": advice_ja, "en": advice_en}
REFUSAL = {"ja": refusal_ja, "en": refusal_en}


def _option(o: Option) -> dict[str, Any]:
    e = o.estimate
    return {
        "member": o.member, "member_name": o.member_name, "record_id": o.record_id, "item_id": o.item_id,
        "copy_branch": o.copy_branch, "pickup_branch": o.pickup_branch, "pickup_name": o.pickup_name,
        "availability": o.availability.value, "route": o.route, "queue_ahead": o.queue_ahead,
        "processed": e.processed, "notice": e.notice, "ready": e.ready, "deadline": e.deadline,
        "schedule": e.basis, "assumptions": list(e.assumptions),
        "preference_rank": o.preference_rank, "distance_km": o.distance_km,
    }


def _alternative(a: Alternative) -> dict[str, Any]:
    return {**_option(a.option), "lost_because": a.lost_because, "days_later": a.days_later, "km_farther": a.km_farther}


def _refusal(r: Refusal, language: str) -> dict[str, Any]:
    return {
        "reason": r.reason.value, "member": r.member, "member_name": r.member_name, "phone": r.phone,
        "branch": r.branch, "branch_name": r.branch_name, "record_id": r.record_id, "item_ids": list(r.item_ids),
        "params": dict(r.params), "message": REFUSAL[language](r), "message_ja": refusal_ja(r), "message_en": refusal_en(r),
    }


def _advice(a: CardAdvice, language: str) -> dict[str, Any]:
    return {
        "member": a.member, "member_name": a.member_name, "phone": a.phone, "gain_days": a.gain_days,
        "ready": a.ready, "pickup_branch": a.pickup_branch, "pickup_name": a.pickup_name,
        "eligibility": a.eligibility, "how_to_get": a.how_to_get, "assumptions": list(a.assumptions),
        "message": ADVICE[language](a), "message_ja": advice_ja(a), "message_en": advice_en(a),
    }


def plan_view(plan: Plan, *, max_alternatives: int = 50, language: str = "ja") -> dict[str, Any]:
    """The plan as JSON; `message` of refusals and advice is in `language` (ja or en), beside both."""
    return {
        "today": plan.today,
        "choice": _option(plan.choice) if plan.choice else None,
        "alternatives": [_alternative(a) for a in plan.alternatives[:max_alternatives]],
        "alternatives_total": len(plan.alternatives),
        "refusals": [_refusal(r, language) for r in plan.refusals],
        "advice": [_advice(a, language) for a in plan.advice],
        "assumptions": plan.assumptions,
        "loans": plan.loans.model_dump() if plan.loans else None,
    }


def series_view(series: SeriesPlan, *, language: str = "ja") -> dict[str, Any]:
    return {
        "in_order": series.in_order,
        "steps": [
            {"volume": s.label, "place_on": s.place_on, "after_collecting": s.after_collecting,
             "plan": plan_view(s.plan, max_alternatives=5, language=language)}
            for s in series.steps
        ],
    }
