"""Diversification compliance (RIC, UCITS) of a fund with a ``compliance`` setting, all funds
at once: its holdings every night (``judge_holdings``: rows with a null proposal_id) and
every proposal it gets (``check_compliance``).

Rules (funds.csv ``compliance``), judged on issuers (securities.csv ``issuer``; a security
without one is its own issuer; cash is no issuer) as shares of NAV:

| regime | rule | value | limit |
|---|---|---|---|
| ric | ``ric_single_issuer_25`` | the largest issuer's weight | 25 % |
| ric | ``ric_5_50`` | the issuers above 5 %, together | 50 % |
| ucits | ``ucits_single_issuer_10`` | the largest issuer's weight | 10 % |
| ucits | ``ucits_5_10_40`` | the issuers above 5 %, together | 40 % |

``before`` is the fund as it stands tonight (market value / NAV); ``after`` is after the
proposal's trades, on the NAV after its flow, as ``proposal_trade.weight_after`` is (costs
left out). Then:

- a rule that passed before and fails after blocks the proposal: the fund gets none, and is
  ``blocked`` with a reason naming the rule, the issuer(s) and the figures;
- a rule that already fails before: the fund gets only trades that do not make it worse.
  Each issuer gets a cap (single-issuer rule: its weight before, or the limit if it is below
  it; the 5 % rule: its weight before if above 5 %, else 5 %), and every buy of an issuer
  that would end above its cap is dropped (said in the proposal's ``notes`` and
  ``compliance_note``). If the rule is still worse after that (a redemption shrinks the
  NAV under the holdings it keeps), or nothing is left to trade, the proposal is blocked.

A published proposal of a fund failing a rule before or after carries a ``compliance_note``
(the review at scale refuses to auto-approve it). Every judged proposal gets one
``compliance_result`` row per rule of its regime (a blocked one too, under the id it would
have had, with ``action`` ``blocked``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rebalance_core.proposals import _fingerprint
from rebalance_core.schema import CASH, COMPLIANCE_RIC, COMPLIANCE_UCITS

RESULT_COLUMNS = ["as_of_date", "fund_id", "proposal_id", "rule", "before_value", "after_value", "passed",
                  "limit_value", "action", "detail"]
RULES = pd.DataFrame([
    # regime, rule, kind, limit, threshold (the 5 % above which an issuer counts in the aggregate)
    (COMPLIANCE_RIC, "ric_single_issuer_25", "single", 0.25, np.nan),
    (COMPLIANCE_RIC, "ric_5_50", "aggregate", 0.50, 0.05),
    (COMPLIANCE_UCITS, "ucits_single_issuer_10", "single", 0.10, np.nan),
    (COMPLIANCE_UCITS, "ucits_5_10_40", "aggregate", 0.40, 0.05),
], columns=["regime", "rule", "kind", "limit", "threshold"])
EPS = 1e-9
LISTED_ISSUERS = 5   # issuers a reason names before "+N more"


@dataclass(frozen=True)
class ComplianceOutcome:
    proposals: pd.DataFrame   # with ``compliance_note``; blocked ones removed, trimmed ones re-totalled
    trades: pd.DataFrame      # the trades left
    results: pd.DataFrame     # RESULT_COLUMNS
    blocked: pd.DataFrame     # fund_id, blocked_reason


def fund_regimes(funds: pd.DataFrame) -> pd.Series:
    """``compliance`` per fund (index fund_id), lower-cased; funds without one left out."""
    if "compliance" not in funds:
        return pd.Series(dtype="object")
    ids = funds.drop_duplicates("fund_id").set_index("fund_id")["compliance"]
    ids = ids.where(ids.notna(), "").astype(str).str.strip().str.lower()
    return ids[ids.isin(RULES["regime"])]


def issuers(security_ids: pd.Series, securities: pd.DataFrame | None) -> pd.Series:
    """The issuer of each security (securities.csv ``issuer``; none: the security itself)."""
    if securities is None or securities.empty or "issuer" not in securities:
        return security_ids.astype("object")
    named = security_ids.map(securities.drop_duplicates("security_id").set_index("security_id")["issuer"])
    blank = named.isna() | (named.astype(str).str.strip() == "")
    return named.where(~blank, security_ids).astype("object")


def check_compliance(as_of: dt.date, drift: pd.DataFrame, proposals: pd.DataFrame, trades: pd.DataFrame,
                     funds: pd.DataFrame, securities: pd.DataFrame | None = None) -> ComplianceOutcome:
    """Judge every proposal of a fund with a compliance setting; block or trim (module docstring)."""
    proposals = proposals if "compliance_note" in proposals else proposals.assign(compliance_note=None)
    regime = fund_regimes(funds)
    judged = proposals[proposals["fund_id"].isin(regime.index)]
    no_blocks = pd.DataFrame({"fund_id": pd.Series(dtype="object"), "blocked_reason": pd.Series(dtype="object")})
    if judged.empty:
        return ComplianceOutcome(proposals, trades, _empty_results(), no_blocks)

    state = judged.set_index("fund_id")[["proposal_id", "nav", "flow"]]
    state["nav_after"] = state["nav"].astype("float64") + pd.to_numeric(state["flow"], errors="coerce").fillna(0.0)
    holdings = drift.loc[drift["fund_id"].isin(state.index) & (drift["security_id"] != CASH),
                         ["fund_id", "security_id", "market_value"]].copy()
    holdings["issuer"] = issuers(holdings["security_id"], securities).to_numpy()
    mine = trades["fund_id"].isin(state.index)
    first = _judge(_issuer_weights(holdings, trades[mine], state), regime)

    # A rule that passed before and fails after: the proposal is blocked.
    broken = first.loc[first["passed_before"] & ~first["passed_after"]]
    blocked_ids = pd.Index(broken["fund_id"].unique())
    reasons = _reasons(broken, "would fail")

    # A rule failing before: drop the buys of issuers that would end above their cap.
    failing = first.loc[first["fund_id"].isin(first.loc[~first["passed_before"], "fund_id"])
                        & ~first["fund_id"].isin(blocked_ids)]
    dropped = _over_cap_buys(failing, trades[mine], holdings, state)
    kept_trades = trades.drop(index=dropped.index)
    final = first
    if len(dropped):
        trimmed_ids = pd.Index(dropped["fund_id"].unique())
        again = _judge(_issuer_weights(holdings[holdings["fund_id"].isin(trimmed_ids)],
                                       kept_trades[kept_trades["fund_id"].isin(trimmed_ids)], state), regime)
        final = pd.concat([first[~first["fund_id"].isin(trimmed_ids)], again], ignore_index=True)
    worse = final.loc[final["fund_id"].isin(failing["fund_id"])
                      & ((final["passed_before"] & ~final["passed_after"])
                         | (~final["passed_before"] & (final["after_value"] > final["before_value"] + EPS)))]
    nothing_left = pd.Index(dropped["fund_id"].unique()).difference(kept_trades["fund_id"].unique())
    reasons = pd.concat([reasons, _reasons(worse, "would be worse even without buying the failing issuer(s)"),
                         pd.Series("compliance: every trade would raise an issuer already over its rule's limit ("
                                   + dropped[dropped["fund_id"].isin(nothing_left)].groupby("fund_id")["rule"].first()
                                   + ")", dtype="object")])
    reasons = reasons.groupby(level=0).agg("; ".join) if len(reasons) else reasons
    blocked_ids = pd.Index(reasons.index.unique())

    # Results: the final figures (a blocked proposal keeps the ones that blocked it).
    final = pd.concat([final[~final["fund_id"].isin(blocked_ids)], first[first["fund_id"].isin(blocked_ids)]],
                      ignore_index=True)
    trimmed = pd.Index(dropped["fund_id"].unique()).difference(blocked_ids)
    final["action"] = np.where(final["fund_id"].isin(blocked_ids), "blocked",
                               np.where(final["fund_id"].isin(trimmed), "trimmed", "none"))
    final["proposal_id"] = final["fund_id"].map(state["proposal_id"])

    kept_trades = kept_trades[~kept_trades["fund_id"].isin(blocked_ids)]
    proposals = proposals[~proposals["fund_id"].isin(blocked_ids)]
    proposals, kept_trades, renamed = _retotal(as_of, proposals, kept_trades, trades, trimmed)
    final["proposal_id"] = final["proposal_id"].replace(renamed)
    proposals = _notes(proposals, final, dropped[dropped["fund_id"].isin(trimmed)])
    results = final.assign(as_of_date=as_of, passed=final["passed_after"])[RESULT_COLUMNS]
    blocked = pd.DataFrame({"fund_id": reasons.index.to_numpy(), "blocked_reason": reasons.to_numpy()})
    return ComplianceOutcome(proposals, kept_trades, results.sort_values(["fund_id", "rule"], ignore_index=True),
                             blocked)


def judge_holdings(as_of: dt.date, drift: pd.DataFrame, summary: pd.DataFrame, funds: pd.DataFrame,
                   securities: pd.DataFrame | None = None, skip=()) -> pd.DataFrame:
    """Every rule of every fund with a compliance setting, judged on its holdings tonight
    (whether it trades or not): RESULT_COLUMNS rows with ``proposal_id`` None, before_value =
    after_value = the holdings' value, ``passed`` on it, action ``none``. Funds in ``skip``
    (blocked by validation: their figures cannot be trusted) and funds without a positive NAV
    are left out. A failing row is an exception a person sees (queue, CLI and HTML report)."""
    regime = fund_regimes(funds)
    nav = summary.drop_duplicates("fund_id").set_index("fund_id")["nav"]
    nav = pd.to_numeric(nav, errors="coerce").astype("float64")
    judged = nav.index[nav.index.isin(regime.index) & (nav > 0).to_numpy() & ~nav.index.isin(pd.Index(skip))]
    if judged.empty:
        return _empty_results()
    state = pd.DataFrame({"nav": nav[judged], "nav_after": nav[judged]})
    holdings = drift.loc[drift["fund_id"].isin(judged) & (drift["security_id"] != CASH),
                         ["fund_id", "security_id", "market_value"]].copy()
    holdings["market_value"] = pd.to_numeric(holdings["market_value"], errors="coerce").fillna(0.0)
    holdings["issuer"] = issuers(holdings["security_id"], securities).to_numpy()
    no_trades = pd.DataFrame({"fund_id": pd.Series(dtype=object), "security_id": pd.Series(dtype=object),
                              "side": pd.Series(dtype=object), "notional": pd.Series(dtype="float64")})
    weights = _issuer_weights(holdings, no_trades, state)
    # A fund holding only cash has no issuer: each of its rules passes at 0.
    empty = judged.difference(weights["fund_id"].unique())
    if len(empty):
        weights = pd.concat([weights, pd.DataFrame({"fund_id": empty, "issuer": None, "before": 0.0, "after": 0.0})],
                            ignore_index=True)
    rows = _judge(weights, regime)
    rows["detail"] = rows["detail"].str.replace(r" before, [0-9.?]+ % after$", " of NAV (holdings)", regex=True)
    rows["detail"] = rows["detail"].str.replace("issuers above 5 % after: ", "issuers above 5 % (holdings): ",
                                                regex=False)
    return rows.assign(as_of_date=as_of, proposal_id=None, passed=rows["passed_before"], action="none")[
        RESULT_COLUMNS].sort_values(["fund_id", "rule"], ignore_index=True)


def holdings_exceptions(results: pd.DataFrame) -> pd.DataFrame:
    """The failing holdings rows (``proposal_id`` null, not passed) of ``results``."""
    if results is None or results.empty:
        return _empty_results()
    return results[results["proposal_id"].isna() & ~results["passed"].astype(bool)]


def _issuer_weights(holdings: pd.DataFrame, trades: pd.DataFrame, state: pd.DataFrame) -> pd.DataFrame:
    """fund_id, issuer, before, after: each issuer's weight of NAV before and after the trades."""
    signed = (trades["notional"].astype("float64") * np.where(trades["side"] == "BUY", 1.0, -1.0))
    traded = signed.groupby([trades["fund_id"], trades["security_id"]]).sum().rename("traded")
    rows = holdings.join(traded, on=["fund_id", "security_id"])
    rows["traded"] = rows["traded"].fillna(0.0)
    value = rows["market_value"].astype("float64")
    rows["before"] = value / rows["fund_id"].map(state["nav"]).astype("float64")
    rows["after"] = (value + rows["traded"]) / rows["fund_id"].map(state["nav_after"])
    return rows.groupby(["fund_id", "issuer"], as_index=False, sort=False)[["before", "after"]].sum()


def _judge(weights: pd.DataFrame, regime: pd.Series) -> pd.DataFrame:
    """Per fund and rule of its regime: before_value, after_value, passed_before,
    passed_after, limit_value, and ``detail`` (the issuers behind the figures)."""
    rows = weights.assign(regime=weights["fund_id"].map(regime)).merge(RULES, on="regime")
    aggregate = rows["kind"] == "aggregate"
    for side in ("before", "after"):
        counts = rows[side] > rows["threshold"] + EPS
        rows[f"{side}_part"] = np.where(aggregate, np.where(counts, rows[side], 0.0), rows[side])
    key = ["fund_id", "rule"]
    by = rows.groupby(key, sort=False)
    out = by.agg(kind=("kind", "first"), limit_value=("limit", "first"), threshold=("threshold", "first"),
                  before_max=("before_part", "max"), before_sum=("before_part", "sum"),
                  after_max=("after_part", "max"), after_sum=("after_part", "sum")).reset_index()
    single = out["kind"] == "single"
    out["before_value"] = np.where(single, out["before_max"], out["before_sum"])
    out["after_value"] = np.where(single, out["after_max"], out["after_sum"])
    out["passed_before"] = out["before_value"] <= out["limit_value"] + EPS
    out["passed_after"] = out["after_value"] <= out["limit_value"] + EPS
    # Detail: the largest issuer (single rules), or the issuers counted after the trades.
    largest = rows.loc[~aggregate].sort_values(["after", "before"], ascending=False, kind="stable")
    largest = largest.drop_duplicates(key).set_index(key)
    named = rows.loc[aggregate & (rows["after_part"] > 0)].sort_values("after", ascending=False, kind="stable")
    listed = named.groupby(key, sort=False).head(LISTED_ISSUERS)
    listing = (listed["issuer"].astype(str) + " " + _pct(listed["after"])).groupby(
        [listed["fund_id"], listed["rule"]]).agg(", ".join)
    extra = named.groupby(key).size() - LISTED_ISSUERS
    listing = listing + np.where(extra.reindex(listing.index).fillna(0) > 0,
                                 " (+" + extra.reindex(listing.index).fillna(0).astype(int).astype(str) + " more)", "")
    index = pd.MultiIndex.from_frame(out[key])
    big = largest.reindex(index)
    out["detail"] = np.where(
        single,
        "issuer " + big["issuer"].astype(object).where(big["issuer"].notna(), "").astype(str).to_numpy() + ": " + _pct(big["before"]).to_numpy() + " before, "
        + _pct(big["after"]).to_numpy() + " after",
        "issuers above 5 % after: " + _or_none(listing.reindex(index)))
    return out[["fund_id", "rule", "kind", "limit_value", "threshold", "before_value", "after_value", "passed_before",
                "passed_after", "detail"]]


def _over_cap_buys(failing: pd.DataFrame, trades: pd.DataFrame, holdings: pd.DataFrame,
                   state: pd.DataFrame) -> pd.DataFrame:
    """The buy trades (index of ``trades``; fund_id, security_id, issuer, rule) of issuers
    that would end above their cap in a fund already failing a rule."""
    if failing.empty:
        return pd.DataFrame(columns=["fund_id", "security_id", "issuer", "rule"])
    funds = failing.loc[~failing["passed_before"], ["fund_id", "rule", "kind", "limit_value", "threshold"]]
    weights = _issuer_weights(holdings[holdings["fund_id"].isin(funds["fund_id"])],
                              trades[trades["fund_id"].isin(funds["fund_id"])], state)
    caps = weights.merge(funds, on="fund_id")
    caps["cap"] = np.where(caps["kind"] == "single", np.maximum(caps["before"], caps["limit_value"]),
                           np.where(caps["before"] > caps["threshold"] + EPS, caps["before"], caps["threshold"]))
    caps = caps.sort_values("cap", kind="stable").drop_duplicates(["fund_id", "issuer"])   # the tightest rule
    over = caps[(caps["after"] > caps["cap"] + EPS) & (caps["after"] > caps["before"] + EPS)]
    buys = trades[trades["side"] == "BUY"]
    issuer_of = holdings.drop_duplicates(["fund_id", "security_id"]).set_index(["fund_id", "security_id"])["issuer"]
    buys = buys.assign(issuer=issuer_of.reindex(pd.MultiIndex.from_frame(buys[["fund_id", "security_id"]])).to_numpy())
    rule = over.set_index(["fund_id", "issuer"])["rule"]
    keys = pd.MultiIndex.from_frame(buys[["fund_id", "issuer"]])
    hit = buys[keys.isin(rule.index)]
    hit = hit.assign(rule=rule.reindex(pd.MultiIndex.from_frame(hit[["fund_id", "issuer"]])).to_numpy())
    return hit[["fund_id", "security_id", "issuer", "rule"]]


def _retotal(as_of, proposals, kept, original, trimmed) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Totals and ids of the trimmed proposals from the trades they keep (the id is a hash of
    the trades: other trades, another id)."""
    if trimmed.empty:
        return proposals, kept, {}
    mine = kept[kept["fund_id"].isin(trimmed)]
    gone = original[original["fund_id"].isin(trimmed) & ~original.index.isin(kept.index)]
    by = mine.groupby("fund_id")
    spend_back = (gone["notional"] + gone["est_cost"]).groupby(gone["fund_id"]).sum()   # buys only
    state = proposals.set_index("fund_id")
    new = pd.DataFrame({"trade_count": by.size(), "gross": by["notional"].sum(), "est_cost": by["est_cost"].sum(),
                        "fingerprint": _fingerprint(mine)})
    ids = new.index.to_series() + "-" + as_of.strftime("%Y%m%d") + "-" + new["fingerprint"]
    renamed = dict(zip(state.loc[new.index, "proposal_id"], ids, strict=True))
    state.loc[new.index, "trade_count"] = new["trade_count"]
    state.loc[new.index, "turnover"] = new["gross"] / (2 * state.loc[new.index, "nav"].astype("float64"))
    state.loc[new.index, "est_cost"] = new["est_cost"]
    state.loc[new.index, "cash_after"] = state.loc[new.index, "cash_after"].astype("float64") + spend_back.reindex(
        new.index).fillna(0.0)
    state.loc[new.index, "proposal_id"] = ids
    kept = kept.assign(proposal_id=kept["proposal_id"].replace(renamed))
    return state.reset_index()[proposals.columns], kept, renamed


def _notes(proposals: pd.DataFrame, final: pd.DataFrame, dropped: pd.DataFrame) -> pd.DataFrame:
    """``compliance_note``: the rules failing before or after; what was dropped (in ``notes`` too)."""
    findings = final[(~final["passed_before"] | ~final["passed_after"]) & (final["action"] != "blocked")]
    if findings.empty:
        return proposals
    text = (findings["rule"] + " fails: " + _pct(findings["before_value"]) + " before, "
            + _pct(findings["after_value"]) + " after (at most " + _pct(findings["limit_value"], 0) + "; "
            + findings["detail"] + ")")
    note = text.groupby(findings["fund_id"]).agg("; ".join)
    if len(dropped):
        dropped_text = ("compliance: buys of " + dropped.groupby("fund_id")["security_id"].agg(", ".join)
                        + " dropped (issuer " + dropped.groupby("fund_id")["issuer"].agg(
                            lambda s: ", ".join(dict.fromkeys(s))) + " already over its limit; no trade may raise it)")
        note = note.add("; " + dropped_text, fill_value="").str.lstrip("; ")
        notes = proposals["fund_id"].map(dropped_text)
        proposals = proposals.assign(notes=np.where(notes.notna(), proposals["notes"].fillna("").str.cat(
            notes.fillna(""), sep="; ").str.strip("; "), proposals["notes"]))
    return proposals.assign(compliance_note=proposals["fund_id"].map(note).where(
        proposals["fund_id"].isin(note.index), None))


def _reasons(rows: pd.DataFrame, verb: str) -> pd.Series:
    """A blocked_reason per fund (index fund_id) from failing rule rows."""
    if rows.empty:
        return pd.Series(dtype="object")
    text = ("compliance: " + rows["rule"] + " " + verb + ": " + np.where(
        rows["kind"] == "single", "the largest issuer would hold ", "the issuers above 5 % would hold together ")
            + _pct(rows["after_value"]) + " of NAV after the trades (" + _pct(rows["before_value"])
            + " before; at most " + _pct(rows["limit_value"], 0) + "; " + rows["detail"] + ")")
    return pd.Series(text.to_numpy(), index=rows["fund_id"].to_numpy()).groupby(level=0).agg("; ".join)


def _pct(values, digits: int = 1) -> pd.Series:
    values = pd.Series(values).astype("float64")
    return values.map(lambda v: "?" if pd.isna(v) else f"{v * 100:.{digits}f} %")


def _or_none(texts: pd.Series) -> np.ndarray:
    values = texts.astype(object).to_numpy()
    return np.where(pd.isna(values), "none", values).astype(object)


def _empty_results() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in RESULT_COLUMNS})
