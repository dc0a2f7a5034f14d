"""The label names of the classification formats, in each dataset's label-index order."""

from __future__ import annotations

import re

__all__ = ["BANKING77", "NEWSGROUPS20", "TWEET_EVAL", "label_names"]


IMDB = ("neg", "pos")
ROTTEN_TOMATOES = ("neg", "pos")
#: SNLI's names and order, which MultiNLI (nyu-mll/multi_nli, GLUE mnli) shares.
SNLI = ("entailment", "neutral", "contradiction")
#: stanfordnlp/sst2's and GLUE sst2's ClassLabel names.
SST2 = ("negative", "positive")
AG_NEWS = ("World", "Sports", "Business", "Sci/Tech")
EMOTION = ("sadness", "joy", "love", "anger", "fear", "surprise")

#: PolyAI/banking77's ClassLabel names, in index order, as its loading script declares
#: them (the two oddities, "Refund_not_showing_up" and "reverted_card_payment?", included).
BANKING77 = (
    "activate_my_card", "age_limit", "apple_pay_or_google_pay", "atm_support", "automatic_top_up",
    "balance_not_updated_after_bank_transfer", "balance_not_updated_after_cheque_or_cash_deposit",
    "beneficiary_not_allowed", "cancel_transfer", "card_about_to_expire", "card_acceptance",
    "card_arrival", "card_delivery_estimate", "card_linking", "card_not_working",
    "card_payment_fee_charged", "card_payment_not_recognised", "card_payment_wrong_exchange_rate",
    "card_swallowed", "cash_withdrawal_charge", "cash_withdrawal_not_recognised", "change_pin",
    "compromised_card", "contactless_not_working", "country_support", "declined_card_payment",
    "declined_cash_withdrawal", "declined_transfer", "direct_debit_payment_not_recognised",
    "disposable_card_limits", "edit_personal_details", "exchange_charge", "exchange_rate",
    "exchange_via_app", "extra_charge_on_statement", "failed_transfer", "fiat_currency_support",
    "get_disposable_virtual_card", "get_physical_card", "getting_spare_card", "getting_virtual_card",
    "lost_or_stolen_card", "lost_or_stolen_phone", "order_physical_card", "passcode_forgotten",
    "pending_card_payment", "pending_cash_withdrawal", "pending_top_up", "pending_transfer",
    "pin_blocked", "receiving_money", "Refund_not_showing_up", "request_refund",
    "reverted_card_payment?", "supported_cards_and_currencies", "terminate_account",
    "top_up_by_bank_transfer_charge", "top_up_by_card_charge", "top_up_by_cash_or_cheque",
    "top_up_failed", "top_up_limits", "top_up_reverted", "topping_up_by_card",
    "transaction_charged_twice", "transfer_fee_charged", "transfer_into_account",
    "transfer_not_received_by_recipient", "transfer_timing", "unable_to_verify_identity",
    "verify_my_identity", "verify_source_of_funds", "verify_top_up", "virtual_card_not_working",
    "visa_or_mastercard", "why_verify_identity", "wrong_amount_of_cash_received",
    "wrong_exchange_rate_for_cash_withdrawal",
)

#: scikit-learn's `target_names` order, which SetFit/20_newsgroups' `label` follows.
NEWSGROUPS20 = (
    "alt.atheism", "comp.graphics", "comp.os.ms-windows.misc", "comp.sys.ibm.pc.hardware",
    "comp.sys.mac.hardware", "comp.windows.x", "misc.forsale", "rec.autos", "rec.motorcycles",
    "rec.sport.baseball", "rec.sport.hockey", "sci.crypt", "sci.electronics", "sci.med",
    "sci.space", "soc.religion.christian", "talk.politics.guns", "talk.politics.mideast",
    "talk.politics.misc", "talk.religion.misc",
)

_STANCE = ("none", "against", "favor")
#: cardiffnlp/tweet_eval's label names per subset (its ClassLabel names).
TWEET_EVAL = {
    "sentiment": ("negative", "neutral", "positive"),
    "emotion": ("anger", "joy", "optimism", "sadness"),
    "hate": ("non-hate", "hate"),
    "irony": ("non_irony", "irony"),
    "offensive": ("non-offensive", "offensive"),
    "emoji": ("❤", "😍", "😂", "💕", "🔥", "😊", "😎", "✨", "💙", "😘",
              "📷", "🇺🇸", "☀", "💜", "😉", "💯", "😁", "🎄", "📸", "😜"),
    **{f"stance_{t}": _STANCE for t in ("abortion", "atheism", "climate", "feminist", "hillary")},
}
TWEET_EVAL_DEFAULT = "sentiment"

#: The label sets of the formats whose labels do not depend on the subset.
FIXED_LABELS: dict[str, tuple[str, ...]] = {
    "imdb": IMDB,
    "snli": SNLI,
    "mnli": SNLI,
    "sst2": SST2,
    "ag_news": AG_NEWS,
    "ag_news_csv": AG_NEWS,
    "emotion": EMOTION,
    "banking77": BANKING77,
    "rotten_tomatoes": ROTTEN_TOMATOES,
    "20newsgroups": NEWSGROUPS20,
}


def named_tweet_eval_subset(group: str | None) -> str | None:
    """The tweet_eval subset a hub subset or a file stem names (`emotion`, `emotion_test`, ...)."""
    lowered = (group or "").lower()
    for name in sorted(TWEET_EVAL, key=len, reverse=True):  # stance_* before shorter names
        if re.search(rf"(^|[^a-z]){re.escape(name)}($|[^a-z])", lowered):
            return name
    return None


def _tweet_eval_subset(group: str | None) -> str:
    """The subset `group` names; anything else (a plain `test.jsonl`, say) is sentiment."""
    return named_tweet_eval_subset(group) or TWEET_EVAL_DEFAULT


def label_names(format: str, subset: str | None = None) -> tuple[str, ...] | None:
    """The label names of a classification format, in index order.

    `subset` only matters for `tweet_eval` (None, or a name that is no tweet_eval subset,
    means sentiment). None for the generic `classification` format, whose labels come
    from the data, and for formats that are not classification formats.
    """
    if format == "tweet_eval":
        return TWEET_EVAL[_tweet_eval_subset(subset)]
    return FIXED_LABELS.get(format)


assert len(BANKING77) == 77 and len(NEWSGROUPS20) == 20 and len(TWEET_EVAL["emoji"]) == 20
