"""The exact optimum over cut points for a chain of devices (dynamic programming).

Every term of a plan's period and latency depends on one stage's two
boundaries ``(i, j) = (b_s, b_{s+1})`` only:

- overlapped: ``f_s(i, j) = max(C_s(i, j) + U_s(j), T_s(j))`` — stage compute
  plus the CPU time of sending cut j, and the link after it (the return link
  is a constant that only cut ``n`` crosses); ``T_s`` and ``U_s`` count the
  bytes of cut j as device ``s`` sends them (int8 after an int8 device), so a
  per-device dtype costs nothing in the recursion;
- serial:     ``f_s(i, j) = (T_{s-1}(i) + C_s(i, j)) + T_s(j)``;
- latency:    ``g_s(i, j) = C_s(i, j) + T_s(j)``.

**Throughput** (the default): ``F_s(j) = min_i max(F_{s-1}(i), f_s(i, j))``
gives the optimal period ``P*``; a second pass
``G_s(j) = min_i G_{s-1}(i) + g_s(i, j)`` over the pairs with
``f_s(i, j) <= P*`` picks, among all plans of period ``P*``, the one of least
latency (an exact lexicographic optimum, not a heuristic tie-break; periods
within ``TIE_RTOL`` of ``P*`` count as ``P*``, since equal sums over other
prefix differences differ in their last bits).
**Latency**: the second pass alone, unconstrained.

Each step is one ``(n+1) x (n+1)`` numpy operation: O(k n^2) time, O(k n)
memory for the arg-mins. Memory limits and "no empty stage" are masks on
``(i, j)``. Values only pass through max/min/+ in the same order as in
:func:`~gapp_tui.partition.estimate.estimate`, so the solver's stage values
and the estimate of its plan are the same numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..errors import BadInput
from .costs import CostTable
from .estimate import estimate
from .link import Link
from .plan import Plan, chain_links

OBJECTIVES = ("throughput", "latency")
#: periods this close to the optimum count as ties, decided by latency: the same
#: sum taken over other prefix differences (p[5]-p[3] against p[4]-p[0]) differs
#: in the last bits, and one ulp of period must not cost a much worse latency
TIE_RTOL = 1e-9
TIE_ATOL = 1e-12  # seconds
_INF = np.inf


def stage_costs(
    table: CostTable, devices: Sequence[str], links: Sequence[Link], return_output: bool
) -> tuple[list[np.ndarray], list[np.ndarray], float]:
    """Per stage the compute prefix sums, per link the transfer time of every cut, and the return time.

    (The senders' CPU time per cut is :func:`sender_cpu`.)
    """
    n = table.n
    sent = sent_arrays(table, devices)
    cut_tensors = np.asarray(table.cut_tensors, dtype=float)
    prefixes = [table.prefix_array(d) for d in devices]
    transfers = [lk.latency + sent[s] / lk.bandwidth + cut_tensors * lk.per_tensor
                 for s, lk in enumerate(links[: len(devices) - 1])]
    blocked = ~np.asarray(table.cuttable, dtype=bool)
    if blocked.any():  # a cut a pipeline cannot send costs infinitely much: the DP never picks it
        for t in transfers:
            t[blocked] = _INF
    ret = 0.0
    if return_output and len(devices) > 1:
        lk = links[len(devices) - 1]
        ret = lk.latency + table.cut_bytes[n] / lk.bandwidth + table.cut_tensors[n] * lk.per_tensor
        if not table.cuttable[n]:
            ret = _INF
    return prefixes, transfers, ret


def sent_arrays(table: CostTable, devices: Sequence[str]) -> list[np.ndarray]:
    """Per device the bytes of every cut as it sends them (one array per dtype, shared)."""
    arrays: dict[int, np.ndarray] = {}
    out = []
    for d in devices:
        col = table.bytes_sent(d)
        if id(col) not in arrays:
            arrays[id(col)] = np.asarray(col, dtype=float)
        out.append(arrays[id(col)])
    return out


def sender_cpu(table: CostTable, devices: Sequence[str], links: Sequence[Link], return_output: bool
               ) -> tuple[list[np.ndarray] | None, float]:
    """Per forward link the sending stage's CPU seconds for every cut, and the return's; None when all are 0."""
    k = len(devices)
    fwd = links[: k - 1]
    has_return = return_output and k > 1
    if not any(lk.cpu_per_byte for lk in fwd) and not (has_return and links[k - 1].cpu_per_byte):
        return None, 0.0
    sent = sent_arrays(table, devices)
    ret_cpu = links[k - 1].cpu_per_byte * table.cut_bytes[table.n] if has_return else 0.0
    return [lk.cpu_per_byte * sent[s] for s, lk in enumerate(fwd)], ret_cpu


def optimal_boundaries(
    prefixes: Sequence[np.ndarray],
    transfers: Sequence[np.ndarray],
    ret: float = 0.0,
    *,
    objective: str = "throughput",
    communication: str = "overlapped",
    allow_empty: bool = True,
    memory: Sequence[float | None] | None = None,
    param_prefix: np.ndarray | None = None,
    send_cpu: Sequence[np.ndarray] | None = None,
    ret_cpu: float = 0.0,
) -> tuple[list[int], float]:
    """The DP core on plain arrays: boundaries ``[0, b1, ..., n]`` and the optimal objective value.

    ``prefixes[s]`` (length n+1) are stage s's compute prefix sums,
    ``transfers[s]`` (length n+1, for s < k-1) the time of sending each cut
    over link s, ``ret`` the time of the output's return trip (0 for none).
    ``memory[s]`` limits the parameter bytes of stage s (``param_prefix``
    gives them). ``send_cpu[s]`` (length n+1) is the CPU time stage s spends
    sending each cut (overlapped communication counts it as busy time),
    ``ret_cpu`` the last stage's for the return. Returns ``inf`` as the value
    when no plan is feasible.
    """
    if objective not in OBJECTIVES:
        raise BadInput(f"objective {objective!r} is not known; give one of {', '.join(OBJECTIVES)}")
    k = len(prefixes)
    n = len(prefixes[0]) - 1
    serial = communication == "serial"
    if k == 1:
        feasible = _fits(memory, param_prefix, 0, 0, n) and (allow_empty or n > 0)
        return [0, n], float(prefixes[0][n] - prefixes[0][0]) if feasible else _INF
    if not allow_empty and n < k:
        return [0] * k + [n], _INF

    idx = np.arange(n + 1)
    rows, cols = idx[:, None], idx[None, :]
    first, last = np.zeros((1, 1), dtype=int), np.full((1, 1), n)

    # I and J index the stage's first boundary i and its end j; (first, cols) is the
    # row i = 0 of stage 0, (rows, last) the column j = n of the last stage.
    # Forbidden pairs get +inf added (x + 0.0 == x exactly, so allowed values are untouched).
    tri = {}

    def penalty(s: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """+inf where a stage may not take (i, j): i > j (i >= j without empty stages), or too heavy; else 0."""
        key = (i.shape, j.shape)
        if key not in tri:
            tri[key] = np.where(i > j if allow_empty else i >= j, _INF, 0.0)
        pen = tri[key]
        if memory is not None and memory[s] is not None and param_prefix is not None:
            pen = np.where((param_prefix[j] - param_prefix[i]) > memory[s], _INF, pen)
        return pen

    def compute(s: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        p = prefixes[s]
        return p[j] - p[i]

    def f(s: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """What stage s contributes to the period (a fresh array)."""
        c = compute(s, i, j)
        if serial:
            t_in = transfers[s - 1][i] if s > 0 else ret
            t_out = transfers[s][j] if s < k - 1 else ret
            c = t_in + c
            c += t_out
            return c
        if send_cpu is not None:  # the stage's CPU also pays for what it sends
            c += send_cpu[s][j] if s < k - 1 else ret_cpu
        return np.maximum(c, transfers[s][j], out=c) if s < k - 1 else c

    def g(s: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """What stage s contributes to the latency: its compute and the link after it (a fresh array)."""
        c = compute(s, i, j)
        c += transfers[s][j] if s < k - 1 else ret
        return c

    def span(s: int) -> tuple[np.ndarray, np.ndarray]:
        return (rows, last) if s == k - 1 else (rows, cols)

    period = _INF
    if objective == "throughput":
        # pass 1: the optimal period P*
        best = (f(0, first, cols) + penalty(0, first, cols))[0]
        for s in range(1, k):
            i, j = span(s)
            cand = f(s, i, j)
            np.maximum(cand, best[:, None], out=cand)
            cand += penalty(s, i, j)
            best = cand.min(axis=0)
        period = float(best[-1])
        if not serial and ret > period:
            period = ret
        if period == _INF:
            return [0] * k + [n], _INF

    # pass 2: the least latency (for throughput: among the plans whose period is P*, up to float noise)
    limit = period * (1 + TIE_RTOL) + TIE_ATOL

    def allowed_penalty(s: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        pen = penalty(s, i, j)
        if objective == "throughput":
            pen = np.where(f(s, i, j) > limit, _INF, pen)
        return pen

    total = (g(0, first, cols) + allowed_penalty(0, first, cols))[0]
    args: list[np.ndarray] = []
    for s in range(1, k):
        i, j = span(s)
        cand = g(s, i, j)
        cand += total[:, None]
        cand += allowed_penalty(s, i, j)
        arg = cand.argmin(axis=0)
        args.append(arg)
        total = cand[arg, np.arange(cand.shape[1])]
    if total[-1] == _INF:
        return [0] * k + [n], _INF
    # walk back from the last stage (whose only end is n)
    b = [n, int(args[-1][0])]
    for arg in reversed(args[:-1]):
        b.append(int(arg[b[-1]]))
    b.append(0)
    b.reverse()
    value = period if objective == "throughput" else float(total[-1])
    return b, value


def _fits(memory: Sequence[float | None] | None, q: np.ndarray | None, s: int, i: int, j: int) -> bool:
    if memory is None or q is None or memory[s] is None:
        return True
    return float(q[j] - q[i]) <= memory[s]


def solve(
    table: CostTable,
    devices: Sequence[str],
    link: Link | Sequence[Link],
    *,
    objective: str = "throughput",
    communication: str = "overlapped",
    return_output: bool = False,
    allow_empty: bool = True,
    memory: Mapping[str, float] | None = None,
    hosts: Mapping[str, str | None] | None = None,
    items: int = 1000,
) -> Plan:
    """The optimal Plan for ``devices`` (in pipeline order) on ``table``, its estimate attached.

    ``objective="throughput"`` minimises the period, then the latency among
    plans of that period; ``"latency"`` minimises the latency. ``memory[device]``
    (bytes) bounds the weights a stage may hold. BadInput when no plan is
    feasible (memory too tight, or more devices than blocks without empty stages).
    """
    table.check_devices(devices)
    if objective not in OBJECTIVES:
        raise BadInput(f"objective {objective!r} is not known; give one of {', '.join(OBJECTIVES)}")
    links = chain_links(devices, link, return_output)
    prefixes, transfers, ret = stage_costs(table, devices, links, return_output)
    cpu, ret_cpu = sender_cpu(table, devices, links, return_output)
    limits = [memory.get(d) if memory else None for d in devices]
    b, value = optimal_boundaries(
        prefixes, transfers, ret, objective=objective, communication=communication, allow_empty=allow_empty,
        memory=limits, param_prefix=table.param_prefix, send_cpu=cpu, ret_cpu=ret_cpu,
    )
    if value == _INF:
        if not allow_empty and table.n < len(devices):
            raise BadInput(
                f"{len(devices)} devices but only {table.n} blocks; allow empty stages or use a finer granularity"
            )
        why = []
        if memory and any(memory.get(d) is not None for d in devices):
            why.append("the memory limits (" + ", ".join(
                f"{d} {memory[d]:.0f} B" for d in devices if memory.get(d) is not None)
                + f"; the model's weights are {table.param_prefix[-1]:.0f} B)")
        blocked = [c for c, ok in enumerate(table.cuttable) if not ok]
        if blocked:
            why.append(f"{len(blocked)} cuts that carry non-tensor values (first: cut {blocked[0]})")
        if not allow_empty:
            why.append("no empty stage allowed")
        raise BadInput(f"no plan fits {' and '.join(why) or 'the constraints'}; raise a limit, allow empty stages, "
                       "add a device or use another granularity")
    plan = Plan(
        list(devices), b, links, model=dict(table.model), granularity=table.granularity, hosts=dict(hosts or {}),
        communication=communication, return_output=return_output, objective=objective, blocks=list(table.blocks),
    )
    plan.estimate = estimate(table, plan, items=items, memory=memory, check=False).to_dict()
    return plan
