"""Window-adaptation variants for benchmarks/adapt.py (research only: hit ratios, not speed).

Each variant is a TinyLFUCache subclass whose `_end_sample` (called by the hot paths after
every `_sample_size` accesses) decides the window; `_set_periods` sets the sample and aging
periods. Window hits are counted by a `__getitem__` wrapper (cost is not measured here).

Round 3 (issue 18, third session; none kept, figures in the changelog and the issue's note):
`Sub` (the shadow LRU judged several times per density sample; also a sketch halving on a
jump when main is stale, a density veto on jumps, jumps scaled by the lead's z-score),
`Depth` (the window grows to where the shadow's extra hits were), `Drop` (a sudden hit-ratio
drop halves the sketch), `AgeClimb` (the aging speed hill-climbs, after Caffeine's
simulator), `Dither` (sample lengths vary, against phase-locking with periodic traces),
`MinWindow` (a window of at least one entry) and `WarmShadow` (the shadow LRU fed while the
cache fills, so it starts warm). Tie rules in the contest (a candidate as
frequent as the victim wins while the shadow LRU leads, at low counts, or while main is
stale) need a change inside the inlined contest and were measured with a temporary one.

Round 4 (issue 18, fourth session; none kept): `MiniSim2`, the paper's mini-simulation on
top of the shipped policy, and the `mini-*` variants below. Seed 1; mean gap to OPT / cells
more than 1 point below the best of LRU, LFU and theine / worst cell; tuned on 8 families,
held out: ARC, web, lirs-multi, scarab (full length: 12 tuned cells, 24 held out):

    variant              200k tuned          200k held out       full tuned   full held out
    current (shipped)    4.87 / 11 / -3.02   7.45 / 3 / -4.52    3.21 / 0     10.90 / 7 / -4.46
    mini                 5.33 / 15 / -4.55   7.76 / 8 / -5.27
    mini-p1              5.32 / 16 / -4.55   7.74 / 9 / -4.28
    mini-hybrid          5.04 / 11 / -3.42   7.56 / 5 / -4.52
    mini-hybrid-p1       5.06 / 12 / -3.96   7.52 / 5 / -4.52
    mini-h1000           4.86 / 10 / -3.02   7.51 / 4 / -4.52
    mini-h500-r16        4.83 /  9 / -2.26   7.37 / 3 / -4.55    3.07 / 0     11.25 / 7 / -7.86
    mini-h500-r16-z1.5   4.88 /  9 / -3.44   7.37 / 3 / -4.53
    mini-h250-r16        4.93 / 11 / -3.49   7.37 / 3 / -4.00
    mini-h500-r16-fine   4.86 / 10 / -2.26   7.38 / 4 / -4.42
    mini-h300-r16-z3     4.85 / 10 / -3.02   7.35 / 3 / -4.54
    mini-h500-r8         4.84 / 10 / -2.26   7.38 / 5 / -2.41
    mini-h500-r4         4.82 /  9 / -2.26   7.56 / 6 / -6.43
    mini-h500-two        4.87 / 10 / -3.02   7.60 / 6 / -4.52
    mini-h500-r16-two    4.84 /  9 / -2.26   7.39 / 3 / -4.55    3.08 / 0     11.50 / 9 / -10.34
    mini-h500-r32-two    4.86 / 10 / -2.26   7.56 / 4 / -4.55
    mini-p1000-half      5.28 / 14 / -15.84  7.59 / 6 / -4.22
    mini-r64             4.87 / 11 / -3.02   7.72 / 4 / -13.92   3.21 / 0     11.12 / 7 / -10.46
    mini-r128            4.87 / 11 / -3.02   7.56 / 4 / -4.52    3.21 / 0     10.78 / 7 / -4.43
    mini-boot10          5.03 / 13 / -2.66   7.92 / 10 / -4.84
    mini-boot20          5.14 / 12 / -4.62   7.85 / 12 / -4.84

The climber off (pure mini-simulation) loses: small minis judge on few accesses, and each
switch of the window costs hits. Hybrid (the climber, overridden by a significant lead of
another share) helps tuned cells only with 1 access in 16 or fewer sampled into the minis
at the large sizes (shifting at 9,356 -3.02 -> -1.53, sprite at 1,768 -1.26 -> -0.45), and
then costs held-out ARC cells at full length (P6 at 71,696 -4.46 -> -7.86, P3 at 34,501
-0.65 -> -4.35, P6 at 143,392 -1.51 -> -6.29): the over-fitting seen in round 3 again.
It is also out of budget: a mini access costs about one LRUCache access, so 6 minis at 1 in
16 add about 0.4 of one per access (2 minis: 0.12) where 0.07 is left (1.93x of 2x), and
their entries add about 90 bytes per cache entry (2 minis at 1 in 32: about 16) where 6
are left. Within budget (1 in 64 or 128, no minis under 32 entries) the tuned cells do not
move; 1 in 128 is within noise of the shipped policy everywhere, 1 in 64 costs held-out
ARC cells up to 10 points.
Minis of a fixed size (about 256 entries, any rate) that pick the window only while the
cache is young and are then dropped (`boot`, so they would cost nothing later) lose too:
what the first 10 or 20 x maxsize accesses favour is not what the rest of the trace does.

Round 5 (issue 18, fifth session; none kept): the sketch's aging and the admission contest
instead of the window. `Contest` reopens the contest (through `popitem`, so slower, same
decisions with no setting), `Aging`/`AgingContest` the aging, `DemoteAge`, `ProtectedClimb`,
`NoveltyAge` and `SumAge` below; `--set` for constants. Same seed, baselines and columns as
round 4 (today's baselines: the shipped policy has 10 tuned misses at 200k, not 11):

    variant                          200k tuned          200k held out
    current (shipped)                4.87 / 10 / -3.02   7.45 / 3 / -4.52
    contest:victims=2 (least frequent 5.05 / 16 / -3.00   7.40 / 4 / -4.48
      of main's 2 least recent)
    contest:victims=4                5.07 / 14 / -3.91   7.34 / 3 / -4.46
    contest:decay=0 (a victim that   8.13 / 30 / -44.84  8.09 / 10 / -8.58
      wins a tie loses a count)
    contest:decay=1 (within 1)       8.98 / 35 / -45.65  9.07 / 17 / -9.98
    contest:decay=1,lead_only=1      4.93 / 10 / -4.01   7.47 / 3 / -4.08
    contest:bonus=2 (+2 to the        4.99 / 11 / -10.49  7.51 / 4 / -3.67
      candidate while the shadow leads)
    contest:rand=128 (Caffeine's      5.03 / 13 / -3.02   7.42 / 3 / -4.52
      random admission of warm keys)
    contest:lead_streak=8 (streak     4.87 / 10 / -3.02   7.44 / 3 / -4.52
      of 8, not 256, while it leads)
    contest:lead_streak=8,lead_warm=1 4.90 / 10 / -4.32   7.45 / 4 / -4.49
    --set _STREAK=32                 5.16 / 14 / -6.08   7.43 / 3 / -4.52
    --set _STREAK=8                  5.28 / 18 / -6.08   7.42 / 3 / -4.52
    --set _COUNTER_MAX=7             4.98 / 10 / -2.97   7.60 / 4 / -4.52
    --set _COUNTER_MAX=7 _WARM=3     4.98 / 11 / -2.97   7.57 / 4 / -4.52
    --set _PROTECTED_SHARE=0.5       5.02 / 11 / -3.02   7.50 / 3 / -4.52
    pclimb: (protected's share       5.01 / 12 / -3.02   7.48 / 3 / -4.52
      climbs on its density)
    demote: (a key leaving protected 5.15 / 12 / -3.02   7.57 / 4 / -4.52
      has its counters halved)
    aging:lead_age=4 (age every 4N   4.88 / 10 / -3.02   7.44 / 3 / -4.52
      while the shadow leads)
    aging:lead_age=1                 4.88 / 10 / -2.99   7.50 / 4 / -4.52
    agingc:regret=0.5 (halve when    4.88 / 11 / -3.02   7.45 / 3 / -4.52
      the shadow leads and half the
      contests lost a seen candidate)
    aging:share_age=0.25 (age period 4.89 / 10 / -3.02   7.48 / 3 / -4.52
      x (1 - window share))
    aging:share_age=0.0625           4.91 / 11 / -3.02   7.48 / 3 / -4.52
    aging:slice=8 (1/8 of each row   5.31 / 14 / -3.15   7.57 / 5 / -4.52
      halved 8x as often)
    novelty: (halve on a surge of    4.87 / 11 / -3.02   7.45 / 3 / -4.52
      new counters in a sample)
    sumage:add_factor=10 (Caffeine:  4.98 / 12 / -3.02   7.46 / 4 / -4.52
      halve at 10N counted additions)
    aging:age_cap=4 (aging period at 4.88 / 10 / -3.02   7.40 / 3 / -3.97
      most 4 samples)
    aging:age_cap=6                  4.85 / 10 / -3.02   7.44 / 3 / -4.11
    aging:age_cap=8                  4.87 / 10 / -3.02   7.45 / 3 / -4.52

At full length (12 tuned cells, 24 held out):

    variant                          full tuned          full held out
    current (shipped)                3.21 / 0 / -0.04    10.90 / 6 / -4.47
    aging:age_cap=4                  3.04 / 0 / +0.01    11.96 / 9 / -13.96
    aging:age_cap=6                  3.06 / 0 / -0.04    11.48 / 7 / -9.73
    novelty:                         3.23 / 0 / -0.04    11.13 / 8 / -4.82
    contest:lead_streak=8            3.22 / 0 / -0.01    10.88 / 5 / -4.56

`contest:lead_streak=8` is the only one no worse anywhere, and it is noise: the same tuned
means (4.87 at 200k, 3.22 against 3.21 at full), held-out moves of 0.02. (`contest:window_hit`,
ties to a candidate hit while in the window, changed no hit on shifting at 200 and 2,000 in a
spot check, and was not run over every cell.)
The aging caps are the over-fitting of rounds 3 and 4 once more: better on the tuned traces
and ARC's largest 200k cells, worse on the held-out ARC cells at full length (P6 at 71,696
-4.47 -> -13.96 with the cap at 4 samples).

What the diagnostics showed (shifting at 9,356, the worst tuned cell): the cache fills at the
first phase change (50k accesses); in the second phase protected holds about 5,400 keys of
the first phase, and the new keys lose their contests mostly as ties at count 1 against the
first phase's tail (victims at 1 or 2), not against saturated counters; those come later,
when the window is already at 70-90%. So neither a faster aging (which turns 1s into 0s only
at its own schedule) nor a smaller protected share (0.2 fixed: -0.05 points there) gives LRU's
hits back: the loss is the new keys' first miss each while the window is small, which is the
window's lever again. Contest changes that admit more (ties, a bonus, random admission, a
shorter streak, victims sampled for the least frequent, victims decaying as they win) cost the
loops, scans and cs (where the contest is what keeps the cache from thrashing) more than they
give shifting or zigzag; aging changes move single cells by up to 1.5 points both ways and the
means by noise (round 3 judged moves of this size noise). A doorkeeper was measured in round 1
(an exact one: 9.56 against 9.57 mean gap), so not again. Cost and memory were not measured:
nothing was kept; `contest:lead_streak=8` and the aging caps cost nothing on the hot path.

Round 6 (issue 18, sixth session; none kept): first the ceiling of the window lever, then
levers outside it. `FixedShare` is the shipped policy with the window's share fixed for the
whole trace; benchmarks/adapt_ceiling.py replays every cell at 12 shares (0, 1, 2, 5, 10, 20,
35, 50, 70, 85, 95, 99%; 0 is a one-entry window that contests, as in Caffeine) and takes
each cell's best (at full length the 5 shares 1, 10, 35, 70, 99% first, all 12 only where
those left a miss). Baselines recomputed for this round (results/ held none); same seed and
columns as rounds 4 and 5:

    variant                          200k tuned          200k held out
    current (shipped)                4.87 / 10 / -3.02   7.45 /  3 / -4.52
    ceiling: best fixed share per    4.44 /  0 / -0.82   6.89 /  1 / -1.17
      cell (the grid)
    best of 1%, 20%, 99% per cell    4.60 /  1 / -1.03   7.08 /  1 / -1.17
    best of 1%, 99% per cell         4.64 /  1 / -1.03   8.05 /  7 / -3.86
    fixed 1% (theine's start)        6.34 / 20 / -32.63  8.49 / 18 / -4.29
    slru (share 0 with main taking   11.11 / 41 / -45.99 12.82 / 25 / -31.03
      every new key: no admission)
    ties:loser=1 (a candidate that   7.39 / 25 / -45.93  8.09 / 11 / -7.70
      lost in this aging period or
      the last wins a tie; about
      maxsize bits)
    ties:stale=1 (a victim not hit   7.48 / 27 / -45.99  8.23 / 12 / -5.58
      in this aging period or the
      last loses a tie; a bit per
      entry)
    ties:loser=1,stale=1,both=1      7.21 / 25 / -45.93  8.12 / 12 / -5.26
    ties:stale=2 (a stale victim's   8.72 / 26 / -45.99  8.71 / 16 / -9.32
      estimate halved in the contest)
    --set _WIDTH_FACTOR=16 (sketch   4.87 / 11 / -2.97   7.36 /  3 / -4.34
      twice as wide)
    --set _AGE_FACTOR=32 (aging half 4.90 / 12 / -3.02   7.57 /  5 / -4.52
      as often)

At full length (12 tuned cells, 24 held out; the ceiling's cells that the 5 coarse shares
bring within a point have only those, so its mean gap is a little pessimistic):

    variant                          full tuned          full held out
    current (shipped)                3.21 / 0 / -0.04    10.90 /  7 / -4.63
    ceiling: best fixed share        2.88 / 0 / +0.12     9.95 /  1 / -1.34
    best of 1%, 99% per cell         3.32 / 0 / +0.02    10.78 /  5 / -2.53
    fixed 1% (theine's start)        6.79 / 4 / -15.18   11.91 / 12 / -8.48
    --set _WIDTH_FACTOR=16           3.96 / 2 / -2.41    11.24 /  5 / -9.47
    --set _AGE_FACTOR=32             3.54 / 1 / -1.94    10.97 /  7 / -4.63

The ceiling: at 200k a fixed share brings every tuned cell within a point of the best of
LRU, LFU and theine (worst shifting at 935, -0.82 at 0%) and every held-out cell but
lirs/multi2 at 568 (-1.17 at 1%; the shipped policy is within a point there, -0.89). At full
length one cell is out of reach: arc/P3 at 86,254 (theine 36.83, best fixed 35.49 at 1%,
-1.34; the shipped policy 32.45); arc/P3 at 172,509 is at -1.00 (95%: 59.85 against LFU's
60.85). So no 200k cell, and one full-length cell, is beyond what a window can do; every
miss of the shipped policy (13 at 200k, 7 at full) is a cell some fixed share reaches, mostly
an extreme one: 99% for zigzag, shifting from 3,742 and sprite at 1,768; 85% for P3 at 86,470
(200k); 1 to 5% for P6, 1% for cs at 352. Three shares are almost enough (1%, 20%, 99%: one
tuned miss, shifting at 935, -1.03); two are not on the held-out cells (1% and 99%: the small
ARC OLTP, web and scarab cells want 20 to 35%).

Two warnings come with it. The ARC curves are rough: at P3 86,254 (full) 0% gives 33.75, 1%
35.49, 2% 32.25; at P6 71,696 1% 39.59, 2% 41.03, 5% 39.54; and the salt moves them as much
(`adapt_ceiling seeds`, seeds 1-4): P3 86,254 at 1% 35.49 / 33.78 / 34.22 / 33.23 (mean
34.18, so seed 1 is lucky and the ceiling there is about -2.6 on average), P6 71,696 at 2%
41.03 / 39.97 / 40.14 / 41.01. A point at those cells is partly hashing luck, for the shipped
policy too (seeds 1-4: P6 71,696 36.42 / 36.90 / 35.70 / 38.20, P3 86,254 32.45 / 28.81 /
29.88 / 28.64; its misses there are real, seed 1 only flatters it on P3). And short horizons
mislead there. A greedy oracle (`adapt_ceiling oracle`: every `segment` accesses each share
is replayed from the same state, and the best one's state goes on) is a lower bound for a
window that moves. With segments of 10,000 it beats the best fixed share on shifting at 935
by 2.9 points (65.98 against 63.03: the phases want different windows) but loses to it on P3
at 86,254 full (31.43 against 35.49) and P6 at 63,286 200k (29.95 against 32.34); with
segments of 50,000 it reaches P3 at 86,254 full (37.96, +1.14 over theine: so with a window
that moves, no measured cell is out of the lever's reach), and gives shifting at 935 63.35,
P6 at 63,286 25.58. The share that wins the next 10,000 accesses is not the one that wins
the trace (likely because a large window wins a segment by letting main's frequent keys go,
which later segments miss; not measured). Any controller judged on samples of that length
(the climber, the shadow LRU's lead, the minis) is pulled the wrong way on the ARC cells.

Levers outside the window (for the cells the ceiling misses, and measured everywhere): the
tie rules fail as round 5's did. In a loop longer than the cache every contest is a tie,
every candidate has lost before and, at the first pass, no victim has been hit, so each mark
fires on every tie, the cache becomes an LRU and loop-1500 at 750 falls to LRU's 0 (-45.9);
`both` (marked candidate and stale victim) does too. A wider sketch or slower aging moves the
200k means by 0.1 or less and the full-length cells by up to 5 points both ways (P6 at 71,696
-4.63 -> -9.47 with the wider sketch; lirs/loop at 252 -> -2.41 and -1.94): the hashing luck
above, not a lever. (Caffeine's simulator also has a feedback W-TinyLFU: a candidate
rejected twice within half a sample wins and grows the window; in a loop that is every
candidate, as with `loser`. Not run.)
theine is not deterministic either: three runs at P6 71,696 (full) gave 41.01, 40.95 and 40.93
(the baseline has 41.05; round 5's -4.47 there is today's -4.63), so the "best of LRU, LFU and
theine" moves by about 0.1 between baselines.

What this leaves: a fixed window is enough for the goal at 200k and all but one full-length
cell (which the salt alone moves by 2 points, and a window moved every 50,000 accesses
reaches), so the misses are the controller's, not the lever's; and a selector over three
shares (1%, 20%, 99%) would do, if it could tell which one a trace wants. But it must judge
over long horizons (10,000-access evidence points the wrong way on ARC), which a 200k trace
at a large cache leaves little room for. No contest or sketch change tried in rounds 5 and 6
helps without costing loops or ARC more.

Round 7 (issue 18, seventh session; none kept): a selector over three shares (1%, 20%, 99%)
judged over a long horizon: set dueling (`Duel`). The sampled keys (the shipped shadow LRU's
salted rule) are replayed through one keys-only fixed-window W-TinyLFU leader per share,
maxsize / rate entries each; the leaders are compared in pairs on the sampled accesses one
hit and the other missed (decayed to remember `horizon` x maxsize accesses), and the window
(the follower) takes a leader's share when it beats the chosen one by `z` standard errors
of those accesses: the hysteresis. Until a first choice the shipped climber runs. Baselines
recomputed (results/ held none); `--seed` sets the salt (of the follower; the leaders keep
their own). Seed 1 unless said, columns as in rounds 4 to 6 (mean gap / misses / worst):

    variant                          200k tuned          200k held out
    current (shipped)                4.87 /  9 / -3.02   7.45 /  3 / -4.52
    duel (1 in 64, no leaders under   4.86 /  8 / -2.24   7.53 /  3 / -4.52
      1,024 entries, horizon 32 x
      maxsize, z 2)
    duel-hyb (climber always on, a   4.85 /  8 / -2.24   7.51 /  4 / -4.52
      new choice moves it once)
    duel-own (the cache's own hits   4.86 /  9 / -2.24   7.57 /  6 / -4.85
      a contestant: the climber stays
      until a leader beats it)
    duel-r16 (the rate lowered as     4.91 /  9 / -5.77   7.52 /  4 / -4.52
      far as 1 in 16 for leaders of
      16 entries)
    duel-h8 / duel-h128 (horizon)    4.85 /  8 / -2.24   7.53 / 4 or 3 / -4.52
    duel-z3                          4.86 /  9 / -2.24   7.52 /  4 / -4.52
    duel-sr (the shadow LRU's rate:  4.89 /  7 / -5.77   7.52 /  4 / -4.52
      leaders of 16 to 32 entries in
      a small cache)
    duel-sr-own                      4.85 /  6 / -2.18   7.61 /  7 / -4.85
    duel-sr-two-own (1%, 99% and     4.87 /  7 / -2.09   7.96 /  7 / -3.67
      own)
    duel-sr-lru-own (99% and own:    5.00 /  7 / -9.06   8.29 /  8 / -16.67
      lock to LRU when it leads)
    duel-sr-l (horizon at least      4.86 /  6 / -2.98   7.52 /  4 / -4.52
      16,384 sampled accesses, a
      lead on 64 discordant at least)
    duel-sr-ext-l (mode 3: locked    4.88 /  8 / -2.98   7.53 /  4 / -4.52
      only to 1% or 99%, the middle
      left to the climber)
    duel-l (as duel-sr-l, 1 in 64)   4.87 /  9 / -2.98   7.53 /  4 / -4.52
    duel-sr-hyb-l                    4.88 /  8 / -2.98   7.52 /  4 / -4.52
    duel-sr-l-w4 (as duel-sr-l, the  4.86 /  7 / -3.02   7.45 /  3 / -4.52
      leaders' first 4 x their size
      sampled accesses once full not
      counted)
    duel-sr-l-w4-g2 (and a 2% lead   4.86 /  7 / -3.02   7.45 /  3 / -4.52
      to grow the window)
    duel-l-w4 (as duel-sr-l-w4, 1 in 4.87 /  9 / -3.02   7.45 /  3 / -4.52
      64: the budget's rate)
    duel-sr-l-w4-two (1% and 99%      4.86 /  7 / -3.02   8.02 /  7 / -4.52
      only: a middle share is needed)

Over seeds 1-4 (each cell's hit ratio averaged over the 4 salts, then the columns; each
seed's own mean gaps on the line below):

    variant                          200k tuned          200k held out
    current (shipped)                4.91 / 10 / -2.81   7.46 /  3 / -4.47
      (tuned 4.87 4.93 4.99 4.87, held out 7.45 7.45 7.43 7.51)
    duel-sr-l-w4                     4.86 /  7 / -2.73   7.45 /  3 / -4.47
      (tuned 4.86 4.83 4.89 4.86, held out 7.45 7.43 7.42 7.51)

At full length (12 tuned cells, 24 held out), seed by seed and over seeds 1-4:

    variant                          full tuned          full held out
    current (shipped), seed 1        3.21 / 0 / -0.04    10.90 / 7 / -4.37
                       seed 2        3.14 / 0 / -0.09    11.22 / 6 / -8.01
                       seed 3        3.21 / 0 / -0.08    10.95 / 5 / -6.94
                       seed 4        3.28 / 0 / +0.03    10.97 / 5 / -8.19
                       seeds 1-4     3.21 / 0 / -0.00    11.01 / 6 / -6.88
    duel-sr-l-w4,      seed 1        3.25 / 0 / -0.12    10.73 / 5 / -4.94
                       seed 2        3.05 / 0 / -0.08    10.82 / 4 / -4.13
                       seed 3        3.15 / 0 / -0.25    10.62 / 4 / -5.34
                       seed 4        3.25 / 0 / -0.17    10.96 / 7 / -7.08
                       seeds 1-4     3.17 / 0 / -0.03    10.78 / 5 / -3.83
    duel-l-w4,         seed 1        3.25 / 0 / -0.12    10.73 / 5 / -4.94
                       seed 2        3.11 / 0 / -0.08    10.82 / 4 / -4.13
                       seed 3        3.22 / 0 / -0.25    10.62 / 4 / -5.34
                       seed 4        3.30 / 0 / -0.03    10.96 / 7 / -7.08
                       seeds 1-4     3.22 / 0 / -0.03    10.78 / 5 / -3.83

(duel-l-w4 at 200k over seeds 1-4: 4.91 / 10 / -2.73 tuned, 7.46 / 3 / -4.47 held out,
each seed's means the shipped policy's.)
So duel-sr-l-w4 is ahead of the shipped policy on all four columns' seed-averaged mean gap
(200k: 4.86 against 4.91 tuned, 7.45 against 7.46 held out, which is noise; full: 3.17
against 3.21, 10.78 against 11.01), and on the held-out full-length cells it is the first
selector to help rather than hurt: the long traces give the leaders the evidence a 200k
trace does not (arc/P3 at 86,254, seed 1: -4.37 -> +0.32 with 1% chosen; averaged over
seeds its worst held-out cell is -3.83 against -6.88). It still loses single ARC cells
with some salts (P6 at 71,696: -4.19 -> -4.94, seed 1; a late switch to 1% from the
climber's state does worse than 1% from the start, 39.59).

What failed, and why. The first versions judged too early on too little: at the shadow
LRU's rate a small cache's leaders have 16 to 32 entries and a horizon of 32 x maxsize is a
few hundred sampled accesses, so a choice came on 14 discordant accesses (lirs/cs at 704:
20% chosen, -5.77 where the climber is at -0.68; over the whole trace, leaders at 1 in 16
rank the shares right there: 41.0 / 33.3 / 0.7 for 1% / 20% / 99%, the real fixed shares
41.5 / 33.7 / 2.0). A floor on the horizon (16,384 sampled accesses) and on the evidence (64
discordant) fixed that. The second failure is the costly one: a wrong larger window is not
undone by switching back. arc/P6 at 31,643 (200k): the climber (40%) hits 10.12, every
fixed share less (1% 9.49, 20% 8.95, 99% 7.85), and every variant that chose 20% or 99%
there ended at 5.86: just after the leaders filled, the 99% leader led the others on 100
discordant accesses (92 to 12): leaders whose sketches are young lose to an LRU for a while
whatever the trace wants. Growing the window hands main's keys to the window's LRU, which
lets them go; going back cannot bring them. Not counting the leaders' first 4 x their size
sampled accesses (`warm`) fixed that cell (10.12, as shipped); a 2% lead to grow changed
nothing more. At 1 in 64, leaders are noisy on ARC besides: over the whole of P6 at 31,643
they rank 20% first (12.9 against 10.0 for 1%, seed 1; 11.9 / 13.8 with another salt),
where the real cache ranks it second: hot keys make a key sample's hits lumpy. `own` (the
climber's own hits on the sampled keys as a contestant) loses held-out cells: the climber's
own hits include its moves, so a leader beats it early and the window is locked where the
climber would have done better (web12 at 343: 1% chosen, -3.67).

What the best one (duel-sr-l-w4) does at 200k: it moves the small zigzag cells (LRU wins
there; 50 to 500 entries, -1.39 -> -0.44 at 100) and sprite at 70 and 176 with some salts
(seed 3: -5.12 -> +0.52 at 176), and leaves the rest where the climber had it: no shifting
cell (their misses are timing: the climber is at 99% there already), sprite at 1,768,
zigzag at 1,000, P3 at 86,470 or P6 at 63,286 moves, because the horizon floor and the
warm-up leave no decision within 200k accesses at large caches. At full length the gains
are at large caches, where the rate is 1 in 64 anyway.

Budget (not met, so _tinylfu.py is unchanged). Cost: replaying the sampled keys of the cost
benchmark's trace (zipf-0.9, 100k accesses, 500 entries) through the three leaders takes
0.165 of the time cachetools' LRUCache takes for the whole trace at the shadow LRU's rate
(1 in 16 at 500 entries), and 0.037 at 1 in 64 (the research leaders, timed by a script
outside the repository, median of 7; the shipped policy is at 1.93x, so 1 in 16 would be
about 2.1x, 1 in 64 about 1.97x).
Memory: the three leaders hold 10.8 bytes per cache entry at 1 in 64 and 42.8 at 1 in 16
(100,000 entries, tracemalloc), where about 6 are left. Within the cost budget (1 in 64
everywhere, no leaders under 1,024 entries: `duel-l-w4`) the 200k cells are the shipped
policy's (seed 1: the same means, misses and worst cells; the zigzag and sprite gains need
the small caches' higher rate), and the full-length held-out cells are duel-sr-l-w4's
(seeds 1-4: the same figures; the tuned full-length mean is 3.22, not 3.17, against the
shipped 3.21: the small lirs/loop cells differ by up to 0.03 points at seed 1, more at
others). So the held-out full-length gain fits the cost budget but not the memory one, and
at that rate nothing else moves; the 200k gain fits neither.

What this leaves: set dueling needs many sampled accesses per decision (hundreds of
discordant ones), which a small cache only gets at a rate over the cost budget and a large
cache not within a 200k trace; and a wrong choice toward a larger window costs more than a
right one gains, so the leaders must warm up before they count. At 1 in 64 it is the first
selector that helps the held-out full-length cells (seed-averaged mean 11.01 -> 10.78,
worst -6.88 -> -3.83) without costing a tuned one, but its leaders cost about 11 bytes per
entry. A next round could make that fit: the 99% leader replaced by the shipped shadow LRU
(an LRU is the 99% share's limit; it already exists; the 20% leader must stay, as
duel-sr-l-w4-two shows), leaders at 1 in 128 or with fewer
entries, keys stored as the packed indexes in one shared dict, and the leaders dropped once
a choice has held for long; then re-measure duel-l-w4 over seeds 1-4 at both lengths, and
the cost and memory in the real hot path. Small caches stay the climber's (no cheap signal
found), and the shifting cells miss on timing (the phase change), which no selector over
fixed shares reaches.

Round 8 (issue 18, eighth session; kept: duel8-s2-e is now _tinylfu.py's duel, so
`current` runs it, and `no-duel` replays the policy before it): round 7's duel made to fit
the memory budget (`Duel8`, `_Leader`). The 99% leader is the shipped shadow LRU itself;
two leaders remain (1% and 20%), keys-only (their keys are the sampled keys' packed
indexes, no items dict), sharing one sketch (they count the same accesses: round 7's three
sketches were equal), fed in the shadow LRU's batch at a sample's end where the shadow
samples 1 in 64; the duel counts hit patterns (3 bits) and judges as round 7's mode 0 with
duel-l-w4's settings. Baselines recomputed (`current` below is the policy before this
round). Seed 1, full length (the first four with salt 7 for the leaders' sketch, the
others with the cache's own salt, as shipped):

    variant                          full tuned          full held out
    current (before)                 3.21 / 0 / -0.04    10.90 / 7 / -4.38
    duel-l-w4 (round 7, again)       3.25 / 0 / -0.12    10.73 / 4 / -5.12
    duel8 (fed from the first        3.23 / 0 / -0.20    10.75 / 6 / -3.77
      eviction, as the shadow LRU)
    duel8-ms (the leaders read the   3.25 / 0 / -0.23    10.87 / 6 / -3.77
      cache's own sketch: none of
      their own)
    duel8-s2 (leaders at 1 in 128,   3.18 / 0 / -0.02    10.79 / 6 / -3.77
      half the entries, none under
      2,048)
    duel8-e (fed from the first      3.24 / 0 / -0.15    10.74 / 5 / -3.47
      access, as round 7's were)
    duel8-s2-e                       3.23 / 0 / -0.80    10.75 / 5 / -3.47

duel8 lost round 7's best cell (arc/P3 at 86,254: -2.93 where duel-l-w4 has +1.93): fed
from the first eviction, a large cache's leaders fill up and warm up some 300,000 accesses
after the cache is full, and the 1% choice came at 610,716 accesses, not 509,649. Fed from
the first access (`early`: the shadow LRU's contents then fill with the cache too; its
counts still start at the first eviction) it came at 530,675 (+1.20). The cache's own
sketch for the leaders (-ms) gives them counts that include the rest of the sample's
accesses (the batch is replayed at its end), and loses the held-out gain (10.87).

Over seeds 1-4 (each cell averaged over the 4 salts, then the columns: `seeds` below; each
salt's own means in brackets):

    200k           tuned                          held out
    current        4.91 / 11 / -2.81              7.46 / 3 / -4.47
                   (4.87 4.93 4.99 4.87)          (7.45 7.45 7.43 7.51)
    duel8-e        4.91 / 11 / -2.72              7.42 / 3 / -3.16
                   (4.86 4.92 4.98 4.86)          (7.41 7.44 7.38 7.47)
    duel8-s2-e     4.91 / 11 / -2.72              7.42 / 3 / -3.16
                   (4.86 4.92 4.98 4.86)          (7.40 7.43 7.38 7.47)

    full           tuned                          held out
    current        3.21 /  0 / -0.00              11.01 / 5 / -5.27
                   (3.21 3.14 3.21 3.28)          (10.90 11.22 10.95 10.97)
    duel8-e        3.23 /  0 / -0.10              10.84 / 5 / -3.54
                   (3.24 3.14 3.23 3.30)          (10.74 11.10 10.75 10.76)
    duel8-s2-e     3.18 /  0 / -0.11              10.85 / 5 / -3.59
                   (3.23 3.07 3.16 3.24)          (10.75 10.89 10.92 10.84)

The cells more than a point below the best of LRU, LFU and theine are the same ones for
current and duel8-s2-e at both lengths (14 at 200k, 5 at full length, all held out at full
length; each smaller but arc/P6 at 143,392, -2.35 -> -2.68). Cells that moved by more than
0.3 points (seed-averaged, duel8-s2-e): 200k only arc/P3 at 86,470 (-4.47 -> -2.92); full
length arc/P3 at 86,254 +3.67, P6 at 71,696 +0.39 and 28,678 +0.34, orm-busy at 4,417
+0.82, and down OLTP at 9,344 -0.43 and 18,688 -0.61 (still +1.83 and +0.50 over the
best), P6 at 143,392 -0.33, orm-busy at 2,208 -0.48 (to -0.11). duel8-e moves the same
cells and also loses arc/P3 at 34,501 (-1.36, to -0.76). duel8-s2-e is ahead of the policy
before it in all four columns and level with or ahead of duel8-e in three, for half its
leaders' memory and time: it is the one shipped. What 1 in 128 gives up is caches of 1,024
to 2,047 entries (leaders of 8 to 15 entries, judged too noisy: none).

Budget. Memory (tracemalloc, 100,000 entries, cachetools 8.0.2): filled as the README's
figure is measured (100,000 distinct keys, no eviction; fed from the first access, the
leaders are full by then), 215.8 bytes per entry against 211.9 before and 157.8 for
LRUCache: 58.0 over LRU where the budget is about 60 (duel8-e: 217.7, 59.9 over);
churned (Zipf 0.9 over 1M keys, 600,000 accesses) 305.4 against 302.0 (LRUCache 283.7,
its dict bloated by the deletions). Cost (`python -m benchmarks.adapt_variants budget
no-duel current`, cachetools 8.0.2, 9 interleaved repeats, Zipf 0.9 over 10 x maxsize keys):
at 500 entries (the README's cell) no leaders, 1.79x and 1.82x LRUCache (noise); at 4,096
1.94x -> 2.04x; at 32,768 2.09x -> 2.15x (the policy before the duel is over 2x there
already, on a machine shared with other jobs). The replay alone (min of 5 runs, sampled
batches timed, 2,048 to 32,768 entries): 4-8 ns per access before, 20-75 ns with the
leaders at 1 in 128 (25-85 at 1 in 64), where an LRUCache access took 0.7-1.9 us.
Flooding: the leaders see only the shadow LRU's sample (the cache's salted hash), salt
their sketch with the cache's salt, and keep the streak rule in their contests. Decisions:
one digest under cachetools 5.3.3 and 8.0.2 (tests/test_decisions.py, now with a cache of
2,100 entries over 300,000 accesses where the duel chooses).

What a next round could try: the 200k cells barely move (a choice needs about 16,384
sampled accesses of evidence: at 1 in 128 that is 2M accesses, so within 200k only very
lopsided traces decide), and small caches have no leaders at all; a cheaper contestant
than a leader for them (the shadow LRU's counts against the cache's own, as round 7's
`own` tried, lost cells). The full-length held-out misses left are arc/P3 at 8,625, 86,254
and 172,509 and arc/P6 at 71,696 and 143,392.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from typing import Any

from cachekit import TinyLFUCache


class _SeesEveryAccess:
    """A variant that looks at every access once (a hit, or the miss that inserts) through
    `_see(key)` before the policy handles it. First among the bases."""

    _data: dict[Any, Any]

    def _see(self, key: Any) -> None:
        raise NotImplementedError

    def __getitem__(self, key: Any) -> Any:
        self._see(key)
        return super().__getitem__(key)  # type: ignore[misc]

    def __setitem__(self, key: Any, value: Any) -> None:
        if key not in self._data:
            self._see(key)
        super().__setitem__(key, value)  # type: ignore[misc]


class Research(TinyLFUCache[Any, Any]):
    sample_factor = 10.0
    sample_min = 1
    sample_max = 1 << 62
    age_factor = 16.0
    window_min = 0.01

    def __init__(self, maxsize: int, **kw: Any) -> None:
        self._window_hits = 0
        self._main_hits = 0
        for name, value in kw.items():
            setattr(self, name, value)
        super().__init__(maxsize, seed=1)
        self.setup()

    full_restart = 0  # 1: the first full sample starts when the cache fills up
    fill_climb = 0  # 1: climb on samples taken while the cache is over half full
    sketch_min = 0  # the sketch is sized for at least this many keys

    def setup(self) -> None:
        pass

    def _reset_policy(self) -> None:
        super()._reset_policy()
        if self.sketch_min > self._maxsize:
            from cachekit._tinylfu import FrequencySketch

            self._sketch = FrequencySketch(int(self.sketch_min))
            self._rows = self._sketch.rows
            self._mask = self._sketch.mask
            self._shift = self._sketch.shift

    def __getitem__(self, key: Any) -> Any:
        if key in self._window:
            self._window_hits += 1
        else:
            self._main_hits += 1
        return super().__getitem__(key)

    def _set_periods(self, capacity: int) -> None:
        super()._set_periods(capacity)
        self._shadow_mask = -1  # the shipped shadow LRU: only j == 0, and dropped
        self._age_period = self.age_factor * capacity
        self._sample_size = int(
            min(max(self.sample_factor * capacity, self.sample_min), self.sample_max)
        )

    def _end_sample(self) -> None:
        self._sampled.clear()
        accesses = self._hits + self._misses
        self._unaged += accesses
        if self._unaged >= self._age_period:
            self._sketch.halve()
            self._unaged = 0
        sample = (self._hits, self._misses, self._window_hits, self._main_hits)
        self._hits = self._misses = self._window_hits = self._main_hits = 0
        if not self._full_sample and not (self.fill_climb and len(self._data) > self._maxsize / 2):
            self._full_sample = self._evicting
            self.warmup()
            return
        self.climb(*sample)

    def warmup(self) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        evicting = self._evicting
        super().__setitem__(key, value)
        if self.full_restart and not evicting and self._evicting:
            # The cache just filled up: a full sample starts now.
            self._hits = self._misses = self._window_hits = self._main_hits = 0
            self._full_sample = True

    def climb(self, hits: int, misses: int, window_hits: int, main_hits: int) -> None:
        pass

    def set_share(self, share: float) -> None:
        self._resize_window(max(share, self.window_min) * self._maxsize)


class Fixed(Research):
    share = 0.01

    def setup(self) -> None:
        self.set_share(self.share)


class Simple(Research):
    """Bold driver (today's climber) with its constants open."""

    step0 = 0.0625
    decay = 0.95
    shrink = 0.5
    restart = 0.05
    sample_decay = 1.0  # the sample grows by 1/this as the step decays (Caffeine small-cache)

    def setup(self) -> None:
        self._step = self.step0 * self._maxsize
        self._last = -1.0
        self._base_sample = self._sample_size

    def climb(self, hits: int, misses: int, window_hits: int, main_hits: int) -> None:
        rate = hits / (hits + misses)
        full = self.step0 * self._maxsize
        if self._last < 0:
            self._last = rate
            self.set_share((self._window_max + self._step) / self._maxsize)
            return
        change = rate - self._last
        step = self._step
        if change < 0:
            step = -step
            self._step = (
                math.copysign(full, step) if -change >= self.restart else step * self.shrink
            )
        elif change >= self.restart:
            self._step = math.copysign(full, step)
        else:
            self._step = step * self.decay
        if abs(change) >= self.restart:
            self._sample_size = self._base_sample
        elif self.sample_decay != 1.0:
            self._sample_size = int(self._sample_size / self.sample_decay)
        self._last = rate
        self.set_share((self._window_max + step) / self._maxsize)


class Density(Research):
    """Within-sample density ratio: window hits per window slot against main hits per main
    slot; the window moves toward equal densities (log ratio, bounded step)."""

    gain = 0.03
    max_step = 0.3
    eps = 1.0
    bias = 0.0  # subtracted from the log ratio: > 0 favours a smaller window
    neutral = 0.0  # 1: the pseudo-hits are spread by capacity, so a dead sample holds still

    def climb(self, hits: int, misses: int, window_hits: int, main_hits: int) -> None:
        w = self._window_max
        m = self._maxsize - w
        if self.neutral:
            n = self._maxsize
            err = math.log(
                (window_hits / w + self.eps / n) / (main_hits / max(m, 1) + self.eps / n)
            )
        else:
            err = math.log(((window_hits + self.eps) / w) / ((main_hits + self.eps) / max(m, 1)))
        err -= self.bias
        step = math.copysign(min(self.max_step, abs(err) * self.gain), err)
        self.set_share(w / self._maxsize + step)


class Indicator(_SeesEveryAccess, Research):
    """The paper's indicator: mean sketch estimate of the accessed keys (hint) times
    (1 - skew^3), skew from the top-k keys' counts in the sample; window = 80% x that."""

    top_k = 70
    scale = 0.8
    hint_from = "own"

    def setup(self) -> None:
        self._hint = 0
        self._count = 0
        self._keys: Counter[Any] = Counter()

    def _see(self, key: Any) -> None:
        self._hint += self._sketch.estimate(hash((key, self._salt)))
        self._count += 1
        self._keys[key] += 1

    def climb(self, hits: int, misses: int, window_hits: int, main_hits: int) -> None:
        top = [c for _, c in self._keys.most_common(self.top_k)]
        skew = 0.0
        if len(top) >= 2:
            xs = [math.log(i + 1) for i in range(len(top))]
            ys = [math.log(c) for c in top]
            mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
            sxx = sum((x - mx) ** 2 for x in xs)
            skew = -sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
        hint = self._hint / max(self._count, 1)
        indicator = hint * (1 - skew**3 if skew < 1 else 0) / 15
        self._hint = self._count = 0
        self._keys.clear()
        self.set_share(indicator * self.scale)


class MiniSim(_SeesEveryAccess, Research):
    """Mini-simulation: fixed-window W-TinyLFU caches of maxsize/rate fed the keys whose
    salted hash is 0 mod rate; each sample, the window takes the best one's share."""

    shares = (0.01, 0.05, 0.1, 0.2, 0.35, 0.5, 0.7, 0.9)
    target = 256  # the mini caches' size: rate = maxsize // target (at least 1)

    def setup(self) -> None:
        self._rate = max(1, int(self._maxsize) // self.target)
        mini = max(1, int(self._maxsize) // self._rate)
        self._minis = [Fixed(mini, share=s, age_factor=self.age_factor) for s in self.shares]
        self._mini_hits = [0] * len(self.shares)

    def _see(self, key: Any) -> None:
        if self._rate > 1 and hash((key, 12345)) % self._rate:
            return
        for i, mini in enumerate(self._minis):
            if key in mini:
                mini[key]
                self._mini_hits[i] += 1
            else:
                mini[key] = None

    def climb(self, hits: int, misses: int, window_hits: int, main_hits: int) -> None:
        best = max(range(len(self.shares)), key=lambda i: self._mini_hits[i])
        if self._mini_hits[best] > 0:
            self.set_share(self.shares[best])
        self._mini_hits = [0] * len(self.shares)


def _v(cls: type[Any], **kw: Any) -> Callable[[int], Any]:
    return lambda size: cls(size, **kw)


VARIANTS: dict[str, Callable[[int], Any]] = {
    "current": lambda size: TinyLFUCache(size, seed=1),  # whatever cachekit ships now
    "fixed1": _v(Fixed, share=0.01),
    "simple": _v(Simple),
    "simple-s2": _v(Simple, sample_factor=2.0),
    "simple-s2-a4": _v(Simple, sample_factor=2.0, age_factor=4.0),
    "simple-s5-a10": _v(Simple, sample_factor=5.0, age_factor=10.0),
    "simple-caffeine-small": _v(Simple, decay=0.995, sample_decay=0.99),
    "density": _v(Density),
    "density-a10": _v(Density, age_factor=10.0),
    "density-s2": _v(Density, sample_factor=2.0),
    "indicator": _v(Indicator, sample_min=50_000, sample_max=50_000),
    "indicator-s10": _v(Indicator),
    "minisim": _v(MiniSim),
    "minisim-s2": _v(MiniSim, sample_factor=2.0),
}


class Shadow(Density):
    """Density steering plus a sampled LRU shadow (keys whose salted hash is 0 mod rate, in
    an LRU of maxsize/rate): when the shadow LRU beat this cache on the same sampled keys by
    more than `margin` over a sample, the window jumps up by `jump`."""

    target = 64
    margin = 0.01
    jump = 0.2
    memory = 0.0  # the share of the previous samples' shadow counts kept in the comparison

    def setup(self) -> None:
        from collections import OrderedDict

        ratio = max(1, int(self._maxsize) // int(self.target))
        self._rate_mask = (1 << (ratio.bit_length() - 1)) - 1
        self._lru_size = max(1, int(self._maxsize) // (self._rate_mask + 1))
        self._lru: OrderedDict[Any, None] = OrderedDict()
        self._lru_hits = 0
        self._own_hits = 0
        self._sampled = 0

    def _shadow(self, key: Any, hit: bool) -> None:
        if hash((key, self._salt)) & self._rate_mask:
            return
        self._sampled += 1
        self._own_hits += hit
        lru = self._lru
        if key in lru:
            lru.move_to_end(key)
            self._lru_hits += 1
        else:
            lru[key] = None
            if len(lru) > self._lru_size:
                lru.popitem(False)

    def __getitem__(self, key: Any) -> Any:
        self._shadow(key, True)
        return super().__getitem__(key)

    def __setitem__(self, key: Any, value: Any) -> None:
        if key not in self._data:
            self._shadow(key, False)
        super().__setitem__(key, value)

    def climb(self, hits: int, misses: int, window_hits: int, main_hits: int) -> None:
        before = self._window_max / self._maxsize
        super().climb(hits, misses, window_hits, main_hits)
        if self._sampled:
            behind = (self._lru_hits - self._own_hits) / self._sampled
            if behind > self.margin:
                self.set_share(min(1.0, max(self._window_max / self._maxsize, before + self.jump)))
        keep = self.memory
        self._lru_hits *= keep
        self._own_hits *= keep
        self._sampled *= keep


def parse(spec: str) -> Callable[[int], Any]:
    """`density:sample_factor=2,gain=0.1` -> a factory of that class with those settings."""
    kind, _, settings = spec.partition(":")
    cls: type[Any] = {
        "simple": Simple,
        "density": Density,
        "indicator": Indicator,
        "minisim": MiniSim,
        "fixed": Fixed,
        "shadow": Shadow,
        "steer": Steer,
        "warm": WarmShadow,
        "minwindow": MinWindow,
        "dither": Dither,
        "ageclimb": AgeClimb,
        "drop": Drop,
        "depth": Depth,
        "sub": Sub,
        "mini2": MiniSim2,
        "duel": Duel,
        "contest": Contest,
        "aging": Aging,
        "agingc": AgingContest,
        "demote": DemoteAge,
        "pclimb": ProtectedClimb,
        "novelty": NoveltyAge,
        "sumage": SumAge,
        "fixw": FixedShare,
        "ties": Ties,
    }[kind]
    kw: dict[str, Any] = {}
    for item in filter(None, settings.split(",")):
        key, _, value = item.partition("=")
        kw[key] = float(value)
    return _v(cls, **kw)


class Shipped(TinyLFUCache[Any, Any]):
    """The shipped policy with its aging period changed (age_factor x capacity)."""

    age_factor = 16.0

    def __init__(self, maxsize: int, age_factor: float = 16.0) -> None:
        self.age_factor = age_factor
        super().__init__(maxsize, seed=1)

    def _set_periods(self, capacity: int) -> None:
        super()._set_periods(capacity)
        self._age_period = int(self.age_factor * capacity)


VARIANTS["shipped-age10"] = lambda size: Shipped(size, 10.0)
VARIANTS["shipped-age6"] = lambda size: Shipped(size, 6.0)


class Steer(TinyLFUCache[Any, Any]):
    """The shipped density + shadow-LRU steering with its constants open, and three ideas
    of issue 18's second round: `accel` (consecutive samples behind the shadow LRU double
    the jump), `prop` (a jump of at least prop x how far behind, in points of hit ratio) and
    `hold` (samples after one behind during which density may not shrink the window)."""

    gain = 0.03
    max_step = 0.3
    jump = 0.1
    behind = 0.01
    accel = 0.0
    prop = 0.0
    hold = 0
    jump_max = 0.9
    start = 0.01
    age_on_lead = 0  # 1: a significant lead of the shadow LRU also ages the sketch
    keep = 1.0  # the shadow LRU this far ahead (a share of sampled accesses): no shrinking
    fast = 1.0  # after a sample behind the shadow LRU, the next sample is this much shorter
    first = 1.0  # the first full sample's length, as a share of the others
    z = 0.0  # > 0: behind only when LRU-only hits beat own-only hits by z standard errors

    def __init__(self, maxsize: int, **kw: Any) -> None:
        for name, value in kw.items():
            setattr(self, name, value)
        self._streak = 0
        self._held = 0
        self._sketch_capacity_base = maxsize
        super().__init__(maxsize, seed=1)

    def _filled(self) -> None:
        super()._filled()
        if self.start != 0.01:
            self._resize_window(self.start * self._maxsize)
        if self.first != 1.0:  # the first full sample this much shorter (at least 250)
            self._full_size = self._sample_size
            self._sample_size = max(int(self._sample_size * self.first), 250)

    def _steer(self, hits: int, window_hits: int) -> float:
        if self.first != 1.0 and hasattr(self, "_full_size"):
            self._sample_size = self._full_size
        maxsize = self._maxsize
        window = self._window_max
        main = maxsize - window
        floor = 1 / maxsize
        error = math.log(
            (window_hits / window + floor) / ((hits - window_hits) / max(main, 1) + floor)
        )
        step = math.copysign(min(self.max_step, abs(error) * self.gain), error)
        if self._held > 0:
            self._held -= 1
            step = max(step, 0.0)
        sampled = self._shadow_sampled
        own_hits = sampled - self._shadow_missed
        behind = (self._shadow_hits - own_hits) / sampled if sampled else 0.0
        if behind > self.keep:
            step = max(step, 0.0)  # the shadow LRU is ahead: density may not shrink
        target = window + step * maxsize
        # The shipped _replay_shadow counts the accesses only the shadow LRU hit, and only
        # this cache hit; halved at each sample's end, as in the shipped _end_sample.
        lo, oo = self._shadow_only, self._own_only
        ok = lo - oo > self.z * math.sqrt(lo + oo) if self.z else True
        self._shadow_only >>= 1
        self._own_only >>= 1
        if self.fast != 1.0:
            base = min(max(2 * self._sketch_capacity_base, 1000), 20000)
            self._sample_size = base
        if ok and behind > self.behind:
            if self.fast != 1.0:
                self._sample_size = max(int(base / self.fast), 500)
            jump = self.jump * (1 + self.accel) ** self._streak if self.accel else self.jump
            jump = min(max(jump, self.prop * behind), self.jump_max)
            target = max(target, window + jump * maxsize)
            if self.age_on_lead and ok:
                self._sketch.halve()  # an LRU does better: the counts mislead, age them now
                self._unaged = 0
            self._streak += 1
            self._held = int(self.hold)
        else:
            self._streak = 0
        self._shadow_sampled = sampled >> 1
        self._shadow_hits >>= 1
        self._shadow_missed >>= 1
        return target


VARIANTS["steer"] = lambda size: Steer(size)


class Sub(TinyLFUCache[Any, Any]):
    """Round 3: the shadow LRU judged `sub` times per density sample (each sub-sample), so
    a lead is acted on sooner; density still steps once per full sample. `after`: what a
    jump does to the shadow's counts (0 keep, 1 halve, 2 zero), so the evidence behind one
    jump does not make the next. `age`: 1 = a jump also halves the sketch when main's
    density is below the window's by `stale` (log ratio): main holds what the counts
    remember, not what is used. `veto`: no jump while the window's density is below main's
    by this much (log ratio). `zscale`: a jump times max(1, z / zscale), z the lead's number
    of standard errors. `sub=1, after=0` replays the shipped policy exactly."""

    sub = 4
    after = 2
    age = 0
    stale = 2.0
    jump_gain = 2.0
    jump_min = 0.1
    veto = 1e9  # no jump while the window's density is below main's by this (log ratio)
    zscale = 0.0  # > 0: the jump is multiplied by max(1, z / zscale), z the lead's z-score
    subz = 1.0  # the lead's z-score a jump needs at a sub-sample that ends no full sample

    def __init__(self, maxsize: int, **kw: Any) -> None:
        for name, value in kw.items():
            setattr(self, name, value)
        self._acc_hits = self._acc_window = self._n = 0
        super().__init__(maxsize, seed=1)

    def _set_periods(self, capacity: int) -> None:
        super()._set_periods(capacity)
        self._sample_size = max(self._sample_size // int(self.sub), 1)

    def _steer(self, hits: int, window_hits: int) -> float:
        self._acc_hits += hits
        self._acc_window += window_hits
        self._n += 1
        maxsize = self._maxsize
        window = self._window_max
        main = maxsize - window
        target = window
        error = 0.0
        full = self._n >= self.sub
        if full:
            hits, window_hits = self._acc_hits, self._acc_window
            floor = 1 / maxsize
            error = math.log(
                (window_hits / window + floor) / ((hits - window_hits) / max(main, 1) + floor)
            )
            target = window + math.copysign(min(0.3, abs(error) * 0.03), error) * maxsize
            self._acc_hits = self._acc_window = self._n = 0
        sampled = self._shadow_sampled
        behind = (self._shadow_hits - sampled + self._shadow_missed) / sampled if sampled else 0
        lo, oo = self._shadow_only, self._own_only
        bar = 1.0 if full else self.subz
        if behind > 0.01 and lo - oo > bar * math.sqrt(lo + oo) and error > -self.veto:
            jump = max(self.jump_min, self.jump_gain * behind)
            if self.zscale:
                jump *= max(1.0, (lo - oo) / math.sqrt(lo + oo) / self.zscale)
            jump = min(jump, 0.9)
            target = max(target, window + jump * maxsize)
            if self.age and full and error > self.stale:
                self._sketch.halve()
            if self.after == 1:
                full = True
            elif self.after == 2:
                self._shadow_sampled = self._shadow_hits = self._shadow_missed = 0
                self._shadow_only = self._own_only = 0
                full = False
        if full:
            self._shadow_sampled >>= 1
            self._shadow_hits >>= 1
            self._shadow_missed >>= 1
            self._shadow_only >>= 1
            self._own_only >>= 1
        return target


VARIANTS["sub1"] = lambda size: Sub(size, sub=1, after=0)  # = current
VARIANTS["sub4"] = lambda size: Sub(size, sub=4, after=2)
VARIANTS["sub4-halve"] = lambda size: Sub(size, sub=4, after=1)
VARIANTS["sub2"] = lambda size: Sub(size, sub=2, after=2)


class Depth(TinyLFUCache[Any, Any]):
    """Round 3: the shadow LRU also says *how far back* the hits it had and this cache
    missed were (their stack depth, scaled by the sampling rate: the LRU size that would
    have hit them). On a significant lead the window grows to the `q` quantile of those
    depths (times `scale`), if that is more than the shipped jump."""

    q = 0.75
    scale = 1.0
    keep = 0  # 1: the depths of the last two samples, else the last one

    def __init__(self, maxsize: int, **kw: Any) -> None:
        for name, value in kw.items():
            setattr(self, name, value)
        self._depths: list[int] = []
        self._old_depths: list[int] = []
        super().__init__(maxsize, seed=1)

    def _replay_shadow(self) -> None:
        shadow = self._shadow
        depths = self._depths
        for h in self._sampled:
            if h < 0 and ~h in shadow:
                keys = list(shadow)
                depths.append(len(keys) - keys.index(~h))
        super()._replay_shadow()

    def _steer(self, hits: int, window_hits: int) -> float:
        lo, oo = self._shadow_only, self._own_only
        s = self._shadow_sampled
        behind = (self._shadow_hits - s + self._shadow_missed) / s if s else 0
        target = super()._steer(hits, window_hits)
        depths = self._depths + (self._old_depths if self.keep else [])
        if behind > 0.01 and lo - oo > math.sqrt(lo + oo) and depths:
            depths.sort()
            d = depths[min(int(self.q * len(depths)), len(depths) - 1)]
            want = d * (self._shadow_mask + 1) * self.scale
            target = max(target, want)
        self._old_depths = self._depths
        self._depths = []
        return target


class Drop(TinyLFUCache[Any, Any]):
    """Round 3: a sample whose hit ratio fell by more than `drop` (absolute) below the
    previous one's halves the sketch (`halve` times): a shift of the popular keys shows as
    a sudden drop, and the counts of the old ones then keep the new ones out."""

    drop = 0.05
    halve = 1

    def __init__(self, maxsize: int, **kw: Any) -> None:
        for name, value in kw.items():
            setattr(self, name, value)
        self._last_rate = -1.0
        super().__init__(maxsize, seed=1)

    def _steer(self, hits: int, window_hits: int) -> float:
        rate = hits / self._sample_size
        if self._last_rate >= 0 and rate < self._last_rate - self.drop:
            for _ in range(int(self.halve)):
                self._sketch.halve()
            self._unaged = 0
        self._last_rate = rate
        return super()._steer(hits, window_hits)


class AgeClimb(TinyLFUCache[Any, Any]):
    """Round 3, after the adaptive-reset sketches of Caffeine's simulator: the sketch ages
    `speed` times faster (1, 2, 4, ... `top`), and the speed hill-climbs on the sample's miss
    ratio (one step per full sample, turning back when the last step made it worse by more
    than `noise`)."""

    top = 16
    noise = 0.0
    start = 1

    def __init__(self, maxsize: int, **kw: Any) -> None:
        for name, value in kw.items():
            setattr(self, name, value)
        self._speed = int(self.start)
        self._dir = 1
        self._prev = -1.0
        super().__init__(maxsize, seed=1)

    def _end_sample(self) -> None:
        accesses = self._hits + self._misses
        self._unaged += accesses * (self._speed - 1)
        if self._full_sample and accesses:
            rate = self._misses / accesses
            if self._prev >= 0:
                if rate > self._prev + self.noise:
                    self._dir = -self._dir
                self._speed = int(min(max(self._speed * 2**self._dir, 1), self.top))
            self._prev = rate
        super()._end_sample()


class Dither(TinyLFUCache[Any, Any]):
    """Round 3: each sample's length varies by up to +-`spread` of its base (a golden-ratio
    sequence, so deterministic), so a workload with a period near the sample's cannot lock
    the climber into a jump-and-shrink cycle (zigzag at 100: a burst every 2,000 accesses,
    samples of 1,000)."""

    spread = 0.25

    def __init__(self, maxsize: int, **kw: Any) -> None:
        for name, value in kw.items():
            setattr(self, name, value)
        self._phase = 0.0
        super().__init__(maxsize, seed=1)

    def _set_periods(self, capacity: int) -> None:
        super()._set_periods(capacity)
        self._base_sample = self._sample_size

    def _end_sample(self) -> None:
        super()._end_sample()
        self._phase = (self._phase + 0.6180339887) % 1.0
        self._sample_size = int(self._base_sample * (1 + self.spread * (2 * self._phase - 1)))


class MinWindow(TinyLFUCache[Any, Any]):
    """Round 3: the window holds at least `least` entries (1% of a cache of 16 is 0.16:
    every new key contests at once, before it can be used a second time)."""

    least = 1.0

    def __init__(self, maxsize: int, **kw: Any) -> None:
        for name, value in kw.items():
            setattr(self, name, value)
        super().__init__(maxsize, seed=1)
        self._resize_window(self._window_max)

    def _resize_window(self, window_max: float) -> None:
        super()._resize_window(max(window_max, min(self.least, self._maxsize / 2)))


class WarmShadow(TinyLFUCache[Any, Any]):
    """Round 3: the shadow LRU is fed while the cache fills up too (without counting), so
    that it starts warm, holding what the cache holds, when the cache is full. Shipped, it
    starts empty then: in a large cache it needs tens of thousands of accesses before it
    can hit as the cache does, and meanwhile it reports the cache ahead."""

    def __init__(self, maxsize: int, **kw: Any) -> None:
        for name, value in kw.items():
            setattr(self, name, value)
        super().__init__(maxsize, seed=1)

    def _warm_shadow(self) -> None:
        shadow = self._shadow
        size = self._shadow_size
        for h in self._sampled:
            if h < 0:
                h = ~h
            if h in shadow:
                shadow.move_to_end(h)
            else:
                shadow[h] = None
                if len(shadow) > size:
                    shadow.popitem(False)
        self._sampled.clear()

    def _filled(self) -> None:
        self._warm_shadow()
        super()._filled()

    def _end_sample(self) -> None:
        if not self._full_sample:
            self._warm_shadow()
        super()._end_sample()


VARIANTS["warm"] = lambda size: WarmShadow(size)


# ----------------------------------------------------------------------------- round 4

#: Window shares the mini-simulation may pick from (`shareset` selects one).
SHARE_SETS: tuple[tuple[float, ...], ...] = (
    (0.01, 0.1, 0.25, 0.5, 0.8, 0.99),
    (0.01, 0.99),
    (0.01, 0.05, 0.1, 0.2, 0.35, 0.5, 0.7, 0.9, 0.99),
    (0.01, 0.2, 0.5, 0.99),
    (0.01, 0.1, 0.5, 0.99),
)


class _FixedMini(TinyLFUCache[Any, Any]):
    """A shadow W-TinyLFU whose window share never moves: it only ages its sketch."""

    def __init__(self, maxsize: int, share: float, seed: int) -> None:
        super().__init__(maxsize, seed=seed)
        self._resize_window(share * maxsize)

    def _end_sample(self) -> None:
        self._unaged += self._hits + self._misses
        if self._unaged >= self._age_period:
            self._sketch.halve()
            self._unaged = 0
        self._hits = self._misses = self._window_hits = 0
        self._sampled.clear()


class MiniSim2(_SeesEveryAccess, TinyLFUCache[Any, Any]):
    """Round 4: the paper's mini-simulation (Einziger et al., Middleware 2018) on top of the
    shipped policy. The keys whose salted hash (the sketch's second index, as the shadow
    LRU's) is 0 modulo `rate` feed one fixed-window W-TinyLFU per share of the share set,
    each of maxsize / rate entries; rate is the power of two that makes those about
    `target` entries, between `rate_min` and `rate_max`. Every `period` x mini-size sampled
    accesses (at least `period_min`, at most `period_max`), once the minis are full, the
    minis' hits (the older ones weighed by `decay`) name the best share.
    `mode` 0: the window goes `smooth` of the way to the best share, and the shipped climber
    is off. `mode` 1 (hybrid): the shipped climber runs, and the window goes to the best
    share only when that mini beat the one nearest the current share by `margin` (a share of
    the sampled accesses) and by `z` standard errors of the accesses only one of the two hit
    (approximated by their hit counts' difference over the root of their sum). `mode` 2: as
    0 while the minis live, with the climber on; `boot` > 0 drops the minis after that many
    x maxsize accesses, so they only pick the young cache's window."""

    shareset = 0
    target = 64.0
    rate_min = 1
    rate_max = 64
    period = 4.0
    period_min = 256
    period_max = 1 << 62
    decay = 0.5
    smooth = 1.0
    mode = 0
    margin = 0.01
    z = 0.0
    mini_seed = 7
    mini_least = 1  # minis of fewer entries than this: none at all (the shipped policy)
    boot = 0.0  # > 0: the minis are dropped after this many x maxsize accesses (mode 2)

    def __init__(self, maxsize: int, **kw: Any) -> None:
        for name, value in kw.items():
            setattr(self, name, value)
        super().__init__(maxsize, seed=1)
        shares = SHARE_SETS[int(self.shareset)]
        rate = max(1, int(maxsize) // max(int(self.target), 1))
        rate = 1 << (rate - 1).bit_length() if rate > 1 else 1
        rate = min(max(rate, int(self.rate_min)), int(self.rate_max))
        self._mini_mask = rate - 1
        size = max(int(maxsize) // rate, 1)
        self._mini_size = size
        self._shares = shares
        self._minis = [_FixedMini(size, s, int(self.mini_seed)) for s in shares]
        if size < self.mini_least:
            self._minis = []
            self._mini_mask = -1  # no key is sampled
        self._mini_hits = [0.0] * len(shares)
        self._mini_fed = 0
        self._mini_period = min(
            max(int(self.period * size), int(self.period_min)), int(self.period_max)
        )
        self._decisions = 0

    def _see(self, key: Any) -> None:
        if self.boot:
            self._seen = getattr(self, "_seen", 0) + 1
            if self._seen > self.boot * self._maxsize:
                self._minis = []
        h = hash((key, self._salt))
        if (h >> 32) & self._mini_mask or not self._minis:
            return
        for i, mini in enumerate(self._minis):
            if h in mini:
                mini[h]
                self._mini_hits[i] += 1
            else:
                mini[h] = None
        self._mini_fed += 1
        if self._mini_fed >= self._mini_period:
            self._mini_fed = 0
            if len(self._minis[0]) >= self._mini_size:
                self._judge()
            else:
                self._mini_hits = [0.0] * len(self._shares)

    def _judge(self) -> None:
        hits = self._mini_hits
        shares = self._shares
        best = max(range(len(shares)), key=lambda i: (hits[i], -abs(shares[i] - 0.01)))
        current = self._window_max / self._maxsize
        if int(self.mode) in (0, 2):
            share = current + self.smooth * (shares[best] - current)
            self._resize_window(share * self._maxsize)
        else:
            near = min(range(len(shares)), key=lambda i: abs(shares[i] - current))
            lead = hits[best] - hits[near]
            n = self._mini_period / (1 - self.decay) if self.decay < 1 else self._mini_period
            if lead > self.margin * n and lead > self.z * math.sqrt(hits[best] + hits[near]):
                self._resize_window(shares[best] * self._maxsize)
        self._decisions += 1
        self._mini_hits = [h * self.decay for h in hits]

    def _steer(self, hits: int, window_hits: int) -> float:
        target = super()._steer(hits, window_hits)
        return self._window_max if int(self.mode) == 0 else target


def _hybrid(period: int, **kw: float) -> dict[str, float]:
    """MiniSim2 settings: hybrid, judged every `period` sampled accesses whatever the size,
    a lead of 2 standard errors (unless `kw` says otherwise)."""
    return {"mode": 1, "z": 2, "period_min": period, "period_max": period, **kw}


# Cost-bounded: 1 access in 64 or 128 sampled, and no minis under 32 entries.
_CHEAP: dict[str, float] = {"mini_least": 32}

_MINIS: dict[str, dict[str, float]] = {
    "mini": {},  # pure: the climber off
    "mini-p1": {"period": 1},
    "mini-hybrid": {"mode": 1},
    "mini-hybrid-p1": {"mode": 1, "period": 1},
    "mini-h1000": _hybrid(1000),
    "mini-h500-r16": _hybrid(500, rate_max=16),
    "mini-h500-r16-z1.5": _hybrid(500, rate_max=16, z=1.5),
    "mini-h250-r16": _hybrid(250, rate_max=16),
    "mini-h500-r16-fine": _hybrid(500, rate_max=16, shareset=2),
    "mini-h300-r16-z3": _hybrid(300, rate_max=16, z=3, decay=0.7),
    "mini-h500-r8": _hybrid(500, rate_max=8),
    "mini-h500-r4": _hybrid(500, rate_max=4),
    "mini-h500-two": _hybrid(500, shareset=1),
    "mini-h500-r16-two": _hybrid(500, rate_max=16, shareset=1),
    "mini-h500-r32-two": _hybrid(500, rate_max=32, shareset=1),
    "mini-p1000-half": {"period_min": 1000, "period_max": 1000, "smooth": 0.5},
    "mini-r64": _hybrid(250, rate_min=64, rate_max=64, **_CHEAP),
    "mini-r128": _hybrid(125, rate_min=128, rate_max=128, **_CHEAP),
    "mini-r64-two": _hybrid(250, rate_min=64, rate_max=64, shareset=1, **_CHEAP),
    # mode 2: the minis (about `target` entries each, any rate) pick the window while the
    # cache is young, overriding the climber, and are dropped after `boot` x maxsize accesses
    "mini-boot10": {"mode": 2, "boot": 10, "target": 256, "rate_max": 1 << 30, "period": 1},
    "mini-boot20": {"mode": 2, "boot": 20, "target": 256, "rate_max": 1 << 30, "period": 1},
}
for _name, _kw in _MINIS.items():
    VARIANTS[_name] = _v(MiniSim2, **_kw)


# ----------------------------------------------------------------------------- round 5
# The sketch's aging and the admission contest (issue 18, fifth session). The contest
# variants override `popitem` (so every eviction goes through it, as the shipped class
# allows) with the shipped contest and one hook, `_admit`; `contest` with no setting
# decides exactly as the shipped policy does (checked: same hits in every cell).


class Contest(TinyLFUCache[Any, Any]):
    """The shipped policy with the admission contest open. Settings (all off by default):

    `bonus`: while the shadow LRU leads (its lead at the last sample's end over `_BEHIND`),
    a candidate wins if its estimate + bonus beats the victim's. `rand`: a warm losing
    candidate (estimate above 5) wins with probability 1/rand (Caffeine's admission against
    hash flooding). `victims`: the victim is the least frequent of main's `victims` least
    recent keys (probation first). `decay`: a victim that beats a candidate estimated within
    `decay` of it has its counters decremented (it pays for blocking). `window_hit`: a
    candidate that was hit while in the window wins ties.
    """

    bonus = 0.0
    rand = 0.0
    victims = 1.0
    decay = -1.0
    window_hit = 0.0
    lead_only = 0.0  # 1: `decay` and `victims` act only while the shadow LRU leads
    lead_streak = 0.0  # > 0: while the shadow LRU leads, a victim's streak ends after this
    lead_warm = -1.0  # >= 0: while the shadow LRU leads, a candidate above this is warm

    def __init__(self, maxsize: int, **kw: Any) -> None:
        import random as _random

        for name, value in kw.items():
            setattr(self, name, value)
        self._leading = False
        self._rng = _random.Random(7)
        self._hit_in_window: set[Any] = set()
        super().__init__(maxsize, seed=1)

    def __getitem__(self, key: Any) -> Any:
        if self.window_hit and key in self._window:
            self._hit_in_window.add(key)
        return super().__getitem__(key)

    def _steer(self, hits: int, window_hits: int) -> float:
        sampled = self._shadow_sampled
        behind = (self._shadow_hits - sampled + self._shadow_missed) / sampled if sampled else 0
        self._leading = behind > 0.01
        return super()._steer(hits, window_hits)

    def _est(self, h: int) -> int:
        a = self._rows[0][h & self._mask]
        b = self._rows[1][h >> self._shift]
        return a if a < b else b

    def _admit(self, candidate: Any, ch: int, region: Any, victim: Any) -> tuple[bool, Any]:
        """Whether the candidate wins, and the victim it contested."""
        cf = self._est(ch)
        active = self._leading or not self.lead_only
        if self.victims > 1 and active:
            best, bf = victim, self._est(region[victim])
            n = 0
            for r in (self._probation, self._protected):
                for key in r:
                    if n >= self.victims:
                        break
                    n += 1
                    f = self._est(r[key])
                    if f < bf:
                        best, bf = key, f
            victim, vf = best, bf
        else:
            vf = self._est(region[victim])
        if cf > vf:
            return True, victim
        if self.bonus and self._leading and cf + self.bonus > vf:
            return True, victim
        if self.window_hit and candidate in self._hit_in_window and cf >= vf:
            return True, victim
        if cf > 5 and self.rand and self._rng.random() * self.rand < 1:
            return True, victim
        warm = self.lead_warm if self._leading and self.lead_warm >= 0 else 5
        if cf > warm and self._outlasted(victim):
            return True, victim
        if self.decay >= 0 and active and vf - cf <= self.decay and vf > 0:
            vh = self._region_of(victim)[victim]
            for row, i in ((self._rows[0], vh & self._mask), (self._rows[1], vh >> self._shift)):
                if row[i]:
                    row[i] -= 1
        return False, victim

    def _outlasted(self, victim: Any) -> bool:
        if not (self.lead_streak and self._leading):
            return super()._outlasted(victim)
        if victim is not self._champion:
            self._champion = victim
            self._wins = 1
        elif self._wins < self.lead_streak:
            self._wins += 1
        else:
            self._champion = None
            return True
        return False

    def _region_of(self, key: Any) -> Any:
        return self._probation if key in self._probation else self._protected

    def popitem(self) -> tuple[Any, Any]:
        if not self._evicting:
            self._filled()
        data = self._data
        window = self._window
        probation = self._probation
        while window and self._window_size + self._incoming > self._window_max:
            candidate, ch = window.popitem(False)
            self._hit_in_window.discard(candidate)
            self._window_size -= 1
            if self._probation_size + self._protected_size + 1 <= self._main_max:
                probation[candidate] = ch
                self._probation_size += 1
                continue
            region = probation or self._protected
            if region:
                victim = next(iter(region))
                admit, victim = self._admit(candidate, ch, region, victim)
                if admit:
                    region = self._region_of(victim)
                    probation[candidate] = ch
                    self._probation_size += 1
                    return self._evict_from(region, victim)
            return candidate, data.pop(candidate)
        for region in (probation, self._protected, window):
            for victim in region:
                self._hit_in_window.discard(victim)
                return self._evict_from(region, victim)
        raise KeyError("empty")


class Aging(TinyLFUCache[Any, Any]):
    """Round 5: the sketch's aging (a smaller counter cap: `--set _COUNTER_MAX=7`).
    `lead_age`: while the shadow LRU leads (last sample's end), the sketch
    ages every `lead_age` x capacity accesses instead of 16 x. `age_cap`: the aging period
    is at most this many samples (the sample is capped at 20,000 accesses, the aging period
    is not: at a cache of 18,713 it is 300k, longer than a quick trace). `regret`: a sample
    in which the shadow LRU leads and more than `regret` of the contests were lost by a
    candidate seen before (estimate >= 2) halves the sketch. `slice`: aging is spread out,
    1/`slice` of each row halved every age_period/`slice` accesses."""

    lead_age = 0.0
    age_cap = 0.0
    regret = 0.0
    slice = 1.0
    age_factor = 16.0
    share_age = 0.0  # > 0: the aging period shrinks as the window grows, to
    # base x max(1 - share, share_age): a large window means recency rules

    def __init__(self, maxsize: int, **kw: Any) -> None:
        for name, value in kw.items():
            setattr(self, name, value)
        self._leading = False
        self._lost = self._contests = 0
        self._slice_at = 0
        super().__init__(maxsize, seed=1)

    def _set_periods(self, capacity: int) -> None:
        super()._set_periods(capacity)
        self._base_age = int(self.age_factor * capacity)
        if self.age_cap:
            self._base_age = min(self._base_age, int(self.age_cap * self._sample_size))
        self._age_period = self._base_age

    def _end_sample(self) -> None:
        import cachekit._tinylfu as t

        if self.slice > 1:
            # the shipped aging off; a slice of each row halved every period / slice
            accesses = self._hits + self._misses
            self._unaged = -(1 << 60)
            self._slice_acc = getattr(self, "_slice_acc", 0) + accesses
            step = self._age_period / self.slice
            while self._slice_acc >= step:
                self._slice_acc -= step
                w = self._sketch.width
                n = int(w / self.slice)
                lo = self._slice_at * n
                for row in self._sketch.rows:
                    row[lo : lo + n] = row[lo : lo + n].translate(t._HALVE)
                self._slice_at = (self._slice_at + 1) % int(self.slice)
        super()._end_sample()
        if self.lead_age:
            self._age_period = (
                int(self.lead_age * self._sketch_capacity_int())
                if self._leading
                else self._base_age
            )
        if self.share_age:
            share = self._window_max / self._maxsize
            self._age_period = int(self._base_age * max(1 - share, self.share_age))
        lost = self._lost / self._contests if self._contests else 0.0
        if self.regret and self._leading and lost > self.regret:
            self._sketch.halve()
            self._unaged = 0
        self._lost = self._contests = 0

    def _sketch_capacity_int(self) -> int:
        cap = self._sketch_capacity
        return int(self._maxsize) if cap == math.inf else int(cap)

    def _steer(self, hits: int, window_hits: int) -> float:
        sampled = self._shadow_sampled
        behind = (self._shadow_hits - sampled + self._shadow_missed) / sampled if sampled else 0
        self._leading = behind > 0.01
        return super()._steer(hits, window_hits)


class AgingContest(Aging):
    """Aging with the contest counted (for `regret`): popitem overridden like Contest's."""

    def popitem(self) -> tuple[Any, Any]:
        if not self._evicting:
            self._filled()
        data = self._data
        window = self._window
        probation = self._probation
        while window and self._window_size + self._incoming > self._window_max:
            candidate, ch = window.popitem(False)
            self._window_size -= 1
            if self._probation_size + self._protected_size + 1 <= self._main_max:
                probation[candidate] = ch
                self._probation_size += 1
                continue
            region = probation or self._protected
            if region:
                victim = next(iter(region))
                vh = region[victim]
                first, second = self._rows
                cf = min(first[ch & self._mask], second[ch >> self._shift])
                vf = min(first[vh & self._mask], second[vh >> self._shift])
                self._contests += 1
                if cf > vf or (cf > 5 and self._outlasted(victim)):
                    probation[candidate] = ch
                    self._probation_size += 1
                    return self._evict_from(region, victim)
                if cf >= 2:
                    self._lost += 1
            return candidate, data.pop(candidate)
        for region in (probation, self._protected, window):
            for victim in region:
                return self._evict_from(region, victim)
        raise KeyError("empty")


VARIANTS["contest"] = _v(Contest)  # = current (checked)
VARIANTS["aging"] = _v(Aging)  # = current (checked)


class DemoteAge(Aging):
    """Round 5: a key that falls out of protected (unused for a while) has its sketch counters
    divided by `div` on the way down to probation, so an old favourite that is no longer
    used stops blocking candidates as a victim long before the next aging (a counter at 15
    cannot be beaten at all). `lead_only`: only while the shadow LRU leads."""

    div = 2.0
    lead_only = 0.0

    def _demote(self) -> None:
        protected = self._protected
        if not (protected and self._protected_size > self._protected_max):
            return
        if self.lead_only and not self._leading:
            super()._demote()
            return
        first, second = self._rows
        mask, shift = self._mask, self._shift
        div = int(self.div)
        weights = self._weights
        while protected and self._protected_size > self._protected_max:
            key, h = protected.popitem(last=False)
            i, j = h & mask, h >> shift
            first[i] //= div
            second[j] //= div
            weight = weights[key] if weights is not None else 1
            self._protected_size -= weight
            self._probation[key] = h
            self._probation_size += weight


VARIANTS["demote-age"] = _v(DemoteAge)


class ProtectedClimb(Aging):
    """Round 5: protected's share of main adapts too (at sample ends only). Protected keys
    leave only when a promotion pushes them down, so after a shift of the popular keys it
    stays full of keys nobody uses (shifting at 9,356: 5,400 of 9,356 entries, with counts
    up to 15, through the whole second phase) while new keys fight over probation. Each
    sample compares protected's hits per entry with probation's (its hits are promotions);
    the share moves by `gain` per unit of their log ratio toward equal density, between
    `least` and `most`. `fixed` > 0: the share is `fixed` whatever the densities."""

    gain = 0.1
    least = 0.1
    most = 0.8
    fixed = 0.0

    def __init__(self, maxsize: int, **kw: Any) -> None:
        self._share = 0.8
        self._promoted = 0
        super().__init__(maxsize, **kw)
        if self.fixed:
            self._share = self.fixed
            self._resize_window(self._window_max)

    def _promote(self, key: Any) -> int:
        self._promoted += 1
        return super()._promote(key)

    def _filled(self) -> None:
        super()._filled()
        self._promoted = 0  # the first full sample starts now

    def _steer(self, hits: int, window_hits: int) -> float:
        promoted, self._promoted = self._promoted, 0
        if not self.fixed:
            protected_hits = max(hits - window_hits - promoted, 0)
            q = max(self._protected_size, 1)
            p = max(self._probation_size, 1)
            floor = 1 / self._maxsize
            error = math.log((protected_hits / q + floor) / (promoted / p + floor))
            step = math.copysign(min(0.3, abs(error) * self.gain), error)
            self._share = min(max(self._share + step, self.least), self.most)
        return super()._steer(hits, window_hits)

    def _resize_window(self, window_max: float) -> None:
        super()._resize_window(window_max)
        self._protected_max = self._main_max * self._share
        self._demote()


VARIANTS["protected-climb"] = _v(ProtectedClimb)


class NoveltyAge(Aging):
    """Round 5: aging triggered by a surge of new keys. At each sample's end the sketch's
    first row is scanned for zero counters (`bytearray.count`, in C): the counters that
    became nonzero since the last sample's end are about the keys first seen in it. When
    that number (per access) exceeds `surge` times its running mean (the samples before,
    weight `keep` each), the popular keys have likely changed: the sketch halves now, so
    the old keys' counts stop blocking the new ones. Cold start excluded (`after` samples)."""

    surge = 2.0
    keep = 0.75
    after = 2.0

    def __init__(self, maxsize: int, **kw: Any) -> None:
        self._zeros = -1
        self._mean = -1.0
        self._samples = 0
        super().__init__(maxsize, **kw)

    def _end_sample(self) -> None:
        accesses = self._hits + self._misses
        row = self._rows[0]
        zeros = row.count(0)
        if self._zeros >= 0 and accesses:
            novelty = (self._zeros - zeros) / accesses
            self._samples += 1
            if self._mean >= 0 and self._samples > self.after and novelty > self.surge * self._mean:
                self._sketch.halve()
                self._unaged = 0
                zeros = row.count(0)
            self._mean = (
                novelty if self._mean < 0 else self.keep * self._mean + (1 - self.keep) * novelty
            )
        super()._end_sample()
        self._zeros = row.count(0) if self._unaged == 0 else zeros
        if self._rows[0] is not row:  # a new sketch
            self._zeros = -1
            self._mean = -1.0


class SumAge(Aging):
    """Round 5: Caffeine's aging rule instead of an access count: the sketch halves when its
    first row's counters sum to `add_factor` x capacity (Caffeine: 10 x maximum additions,
    halved with the counters), so a workload whose keys saturate their counters ages
    slower and one of many new keys faster. The sum is estimated at each sample's end from
    `probe` counters (the salted hash spreads keys evenly over the row): no hot-path work."""

    add_factor = 10.0
    probe = 4096.0

    def _set_periods(self, capacity: int) -> None:
        super()._set_periods(capacity)
        self._sum_limit = self.add_factor * capacity
        self._age_period = 1 << 62  # the access-count aging off

    def _end_sample(self) -> None:
        row = self._rows[0]
        n = min(len(row), int(self.probe))
        if sum(row[:n]) * len(row) / n >= self._sum_limit:
            self._sketch.halve()
        super()._end_sample()


# ----------------------------------------------------------------------------- round 6
# The ceiling of the window lever (benchmarks/adapt_ceiling.py), and admission tie rules.


class FixedShare(TinyLFUCache[Any, Any]):
    """Round 6: the shipped policy (sketch, aging, contest, sample periods) with the window's
    share fixed at `share` for the whole trace: the climber's `_steer` always answers it.
    `share` may be 0 to 1 - 1/maxsize (the shipped bounds are 1% and 99%); 0 leaves a window
    of the newest key only, which contests on the next miss (as in Caffeine). `slru` = 1
    (with share 0): main takes every new key without a contest, an SLRU with no admission."""

    share = 0.01
    slru = 0.0
    seed = 1.0

    def __init__(self, maxsize: int, **kw: Any) -> None:
        for name, value in kw.items():
            setattr(self, name, value)
        super().__init__(maxsize, seed=int(self.seed))
        self._resize_window(self.share * maxsize)

    def _steer(self, hits: int, window_hits: int) -> float:
        return self.share * self._maxsize

    def _resize_window(self, window_max: float) -> None:
        # The shipped _resize_window with the bounds [0, maxsize - 1] instead of 1%..99%.
        maxsize = self._maxsize
        self._window_max = min(max(window_max, 0.0), maxsize - 1)
        self._main_max = maxsize - self._window_max
        if self._window_max == 0 and not self.slru:
            # The newest key stays in the window until the next miss, where it contests:
            # with room for it in main, it would enter main unopposed (an SLRU).
            self._main_max = maxsize - 1
        self._protected_max = self._main_max * 0.8
        self._demote()
        window = self._window
        probation = self._probation
        while probation and self._probation_size + self._protected_size > self._main_max:
            key, h = probation.popitem(False)
            self._probation_size -= 1
            window[key] = h
            self._window_size += 1
        while window and self._window_size > self._window_max:
            key, h = window.popitem(False)
            self._window_size -= 1
            probation[key] = h
            self._probation_size += 1


#: The window shares of the ceiling's grid.
CEILING_SHARES: tuple[float, ...] = (
    0.0,
    0.01,
    0.02,
    0.05,
    0.1,
    0.2,
    0.35,
    0.5,
    0.7,
    0.85,
    0.95,
    0.99,
)
for _share in CEILING_SHARES:
    VARIANTS[f"fixw{round(_share * 100)}"] = _v(FixedShare, share=_share)
VARIANTS["slru"] = _v(FixedShare, share=0.0, slru=1.0)


class Ties(Contest):
    """Round 6: who wins a tie in the contest (the shipped rule: the victim). Off by default
    (then decides as shipped). Keys are marked by epoch: an epoch ends at each aging, or every
    `epoch` x maxsize accesses if `epoch` > 0; a mark lasts the epoch it was set in and the
    next one (two bits: this epoch's and the last one's).

    `loser`: a candidate that lost a contest is marked (in a bit array of about maxsize bits,
    indexed by the key's salted sketch index: no key is stored), and a marked candidate wins
    a tie (or is within `margin` of the victim). `stale`: a victim that was not hit in this
    epoch or the last one loses a tie (a per-entry bit); `stale` = 2: its estimate is halved
    for the contest (a lazy aging of that one key). `both`: with `loser` and `stale`, a tie
    goes to the candidate only when it is marked and the victim stale."""

    loser = 0.0
    stale = 0.0
    both = 0.0
    margin = 0.0
    epoch = 0.0

    def __init__(self, maxsize: int, **kw: Any) -> None:
        super().__init__(maxsize, **kw)
        bits = 1 << max(int(maxsize) - 1, 1).bit_length()
        self._bits_mask = bits - 1
        self._lost_now = bytearray(bits)
        self._lost_before = bytearray(bits)
        self._hit_now: set[Any] = set()
        self._hit_before: set[Any] = set()
        self._epoch_left = self.epoch * maxsize if self.epoch else -1.0

    def _new_epoch(self) -> None:
        self._lost_before, self._lost_now = self._lost_now, self._lost_before
        self._lost_now[:] = bytes(len(self._lost_now))
        self._hit_before, self._hit_now = self._hit_now, set()

    def __getitem__(self, key: Any) -> Any:
        if self.stale:
            self._hit_now.add(key)
        return super().__getitem__(key)

    def _end_sample(self) -> None:
        accesses = self._hits + self._misses
        super()._end_sample()
        if self.epoch:
            self._epoch_left -= accesses
            if self._epoch_left <= 0:
                self._epoch_left = self.epoch * self._maxsize
                self._new_epoch()
        elif self._unaged == 0 and accesses:
            self._new_epoch()  # the sketch just aged

    def _stale(self, victim: Any) -> bool:
        return victim not in self._hit_now and victim not in self._hit_before

    def _admit(self, candidate: Any, ch: int, region: Any, victim: Any) -> tuple[bool, Any]:
        admit, victim = super()._admit(candidate, ch, region, victim)
        if admit:
            return True, victim
        cf = self._est(ch)
        vh = self._region_of(victim)[victim]
        vf = self._est(vh)
        bit = (ch & self._mask) & self._bits_mask
        marked = self._lost_now[bit] or self._lost_before[bit]
        stale = bool(self.stale) and self._stale(victim)
        if self.stale == 2 and stale and cf > vf >> 1:
            return True, victim
        tie = cf + self.margin >= vf
        if self.loser and self.stale and self.both:
            win = tie and marked and stale
        else:
            win = tie and ((self.loser and marked) or (self.stale == 1 and stale and cf >= vf))
        if win:
            return True, victim
        if self.loser:
            self._lost_now[bit] = 1
        return False, victim

    def popitem(self) -> tuple[Any, Any]:
        key, value = super().popitem()
        self._hit_now.discard(key)  # the per-entry bit goes with the entry
        self._hit_before.discard(key)
        return key, value


# ----------------------------------------------------------------------------- round 7
# A selector over a few window shares judged over a long horizon (issue 18, seventh session).

#: The salt of the round 7 variants and of `current` (benchmarks.adapt --seed sets it).
SEED = 1


class Duel(_SeesEveryAccess, TinyLFUCache[Any, Any]):
    """Round 7: set dueling, as in CPU caches. The keys whose salted hash's second half is 0
    modulo `rate` (a power of two; 1 in 64 is what the cost budget allows) are replayed
    through one keys-only fixed-window W-TinyLFU per share of `shares` (the leaders, each
    maxsize / rate entries, `_FixedMini`), and through nothing else: the follower is this
    cache. The leaders' hits are compared in pairs (the sampled accesses one hit and the
    other missed), their counts decaying so that they remember about `horizon` x maxsize
    accesses, and judged every `every` x mini-size sampled accesses once the leaders are
    full. The choice changes only when another leader beats the chosen one by `z` standard
    errors of their discordant accesses (and by `margin` of the sampled accesses): that is
    the hysteresis.

    `mode` 0 (select): until a first choice the shipped climber runs; from then on the
    window is the chosen share. `mode` 1 (hybrid): the climber always runs, and a change of
    choice moves the window to the chosen share once. `mode` 2 (override): the climber runs
    and the cache's own hits on the sampled keys are one more contestant; the first time a
    leader beats them by `z`, the window takes that leader's share and mode 0 goes on.
    `least`: with fewer mini entries than that at `rate`, the rate is lowered (down to
    `rate_min`); below `rate_min`'s, no leaders at all (the shipped policy). `shadow_rate`
    = 1: the shipped shadow LRU's rate instead (maxsize / 32 rounded up to a power of two, at
    most 64: leaders of 16 to 32 entries in a small cache, so 1 in 16 at the cost benchmark's
    500). `mode` 3 (extremes): as 2, but the window is locked only to a leader in `free`
    (the extreme shares) and only when it beats this cache and every other leader; when a
    leader outside `free` beats the locked one, the climber takes over again (and this
    cache's own hits are a contestant again)."""

    shares: tuple[float, ...] = (0.01, 0.2, 0.99)
    rate = 64
    rate_min = 64
    least = 16
    horizon = 32.0
    every = 1.0
    z = 2.0
    margin = 0.0
    mode = 0
    mini_seed = 7
    shadow_rate = 0
    free: tuple[int, ...] = ()  # mode 3: the leaders (indexes) the window may be locked to
    horizon_min = 0.0  # the memory is at least this many sampled accesses
    min_disc = 0.0  # no lead counts on fewer discordant accesses than this
    grow_margin = 0.0  # a lead that would grow the window must be this large (see margin)
    warm = 0.0  # the leaders' first this many x mini-size sampled accesses once full: no count

    def __init__(self, maxsize: int, **kw: Any) -> None:
        for name, value in kw.items():
            setattr(self, name, value)
        super().__init__(maxsize, seed=SEED)
        rate = int(self.rate)
        while rate > int(self.rate_min) and maxsize // rate < self.least:
            rate >>= 1
        if self.shadow_rate:
            rate = min(1 << (-(-int(maxsize) // 32) - 1).bit_length(), 64)
            self.least = 1
        size = int(maxsize) // rate
        self._mini_size = size
        self._mini_mask = rate - 1
        n = len(self.shares)
        self._minis = (
            [_FixedMini(size, s, int(self.mini_seed)) for s in self.shares]
            if size >= self.least
            else []
        )
        # Decayed counts: _only[i][j] = sampled accesses leader i hit and leader j missed
        # (index n: this cache's own hits, for mode 2).
        self._only = [[0.0] * (n + 1) for _ in range(n + 1)]
        self._fed = 0
        self._sampled_n = 0.0
        self._period = max(int(self.every * size), 1)
        self._keep = math.exp(-self._period / max(self.horizon * size, self.horizon_min, 1))
        self._choice = -1
        self._switches = 0
        self._warming = int(self.warm * size)
        self._own_contest = int(self.mode) in (2, 3)

    def _see(self, key: Any) -> None:
        minis = self._minis
        if not minis:
            return
        h = hash((key, self._salt))
        if (h >> 32) & self._mini_mask:
            return
        hit = []
        for mini in minis:
            if h in mini:
                mini[h]
                hit.append(True)
            else:
                mini[h] = None
                hit.append(False)
        if not minis[-1]._evicting:
            return  # the leaders are filling up: their hits say nothing yet
        if self._warming > 0:
            # Just full, a leader's sketch knows little yet: the ones that admit on it lose
            # to an LRU for a while whatever the trace wants (arc/P6 at 31,643: 99% chosen
            # on 100 discordant accesses after 96,000, then the worst share of the trace).
            self._warming -= 1
            return
        if self._own_contest:
            hit.append(key in self._data)
        only = self._only
        for i, a in enumerate(hit):
            if a:
                row = only[i]
                for j, b in enumerate(hit):
                    if not b:
                        row[j] += 1
        self._sampled_n += 1
        self._fed += 1
        if self._fed >= self._period:
            self._fed = 0
            self._judge()

    def _leads(self, i: int, j: int) -> bool:
        a = self._only[i][j]
        b = self._only[j][i]
        margin = self.margin
        if self.grow_margin and self.shares[i] * self._maxsize > self._window_max:
            # A larger window hands main's keys to the window's LRU: what they were worth
            # is lost for good if the choice was wrong (arc/P6 at 31,643: -4 points).
            margin = max(margin, self.grow_margin)
        return (
            a - b > self.z * math.sqrt(a + b)
            and a - b > margin * self._sampled_n
            and a + b >= self.min_disc
        )

    def _judge(self) -> None:
        if int(self.mode) == 3:
            self._judge_extremes()
        else:
            self._judge_any()
        keep = self._keep
        for row in self._only:
            for j in range(len(row)):
                row[j] *= keep
        self._sampled_n *= keep

    def _judge_extremes(self) -> None:
        n = len(self._minis)
        current = self._choice
        if current < 0:
            for i in self.free:
                if all(self._leads(i, j) for j in range(n + 1) if j != i):
                    self._choose(i)
                    return
        else:
            for j in range(n):
                if j != current and self._leads(j, current):
                    if j in self.free:
                        self._choose(j)
                    else:  # a middle share does better: the climber again
                        self._choice = -1
                        self._own_contest = True
                        for row in self._only:  # own's counts start anew
                            row[n] = 0.0
                        for row in self._only[n:]:
                            row[:] = [0.0] * len(row)
                    return

    def _judge_any(self) -> None:
        n = len(self._minis)
        current = self._choice
        if self._own_contest and current < 0:
            current = n  # this cache (the climber) is the one to beat
        if current < 0:
            # No choice yet: one leader must beat every other.
            for i in range(n):
                if all(self._leads(i, j) for j in range(n) if j != i):
                    self._choose(i)
                    break
        else:
            best = max(range(n), key=lambda i: self._only[i][current] - self._only[current][i])
            if best != current and self._leads(best, current):
                self._choose(best)

    def _choose(self, i: int) -> None:
        self._choice = i
        self._own_contest = False
        self._switches += 1
        self._resize_window(self.shares[i] * self._maxsize)

    def _steer(self, hits: int, window_hits: int) -> float:
        target = super()._steer(hits, window_hits)
        if self._choice >= 0 and int(self.mode) != 1:
            return self.shares[self._choice] * self._maxsize
        return target


_DUELS: dict[str, dict[str, Any]] = {
    "duel": {},  # select, 1 in 64, 32 x maxsize, z 2
    "duel-hyb": {"mode": 1},
    "duel-own": {"mode": 2},
    "duel-r16": {"rate_min": 16},  # over the cost budget below 1,024 entries
    "duel-h8": {"horizon": 8.0},
    "duel-h128": {"horizon": 128.0},
    "duel-z3": {"z": 3.0},
    "duel-sr": {"shadow_rate": 1},
    "duel-sr-own": {"shadow_rate": 1, "mode": 2},
    "duel-sr-two-own": {"shadow_rate": 1, "mode": 2, "shares": (0.01, 0.99)},
    "duel-sr-lru-own": {"shadow_rate": 1, "mode": 2, "shares": (0.99,)},
    "duel-sr-ext": {"shadow_rate": 1, "mode": 3, "free": (0, 2)},
    "duel-sr-ext-z3": {"shadow_rate": 1, "mode": 3, "free": (0, 2), "z": 3.0},
    "duel-sr-ext-z4": {"shadow_rate": 1, "mode": 3, "free": (0, 2), "z": 4.0},
    "duel-sr-ext-m2": {"shadow_rate": 1, "mode": 3, "free": (0, 2), "margin": 0.02},
    "duel-sr-ext-z3-m2": {"shadow_rate": 1, "mode": 3, "free": (0, 2), "z": 3.0, "margin": 0.02},
    "duel-sr-m2": {"shadow_rate": 1, "margin": 0.02},
    "duel-sr-z3-m2": {"shadow_rate": 1, "z": 3.0, "margin": 0.02},
    # long in sampled accesses too (at least 16,384 of them), and 64 discordant ones at least
    "duel-l": {"horizon_min": 16384, "min_disc": 64},
    "duel-sr-l": {"shadow_rate": 1, "horizon_min": 16384, "min_disc": 64},
    "duel-sr-ext-l": {
        "shadow_rate": 1,
        "mode": 3,
        "free": (0, 2),
        "horizon_min": 16384,
        "min_disc": 64,
    },
    "duel-sr-l-z3": {"shadow_rate": 1, "horizon_min": 16384, "min_disc": 64, "z": 3.0},
    "duel-sr-hyb-l": {"shadow_rate": 1, "mode": 1, "horizon_min": 16384, "min_disc": 64},
    "duel-sr-l-g2": {"shadow_rate": 1, "horizon_min": 16384, "min_disc": 64, "grow_margin": 0.02},
    "duel-sr-l-g4": {"shadow_rate": 1, "horizon_min": 16384, "min_disc": 64, "grow_margin": 0.04},
    "duel-l-w4": {"horizon_min": 16384, "min_disc": 64, "warm": 4},  # 1 in 64: the budget's
    "duel-sr-l-w4": {"shadow_rate": 1, "horizon_min": 16384, "min_disc": 64, "warm": 4},
    # two leaders only: the 99% one could stand in for the shipped shadow LRU (1 extra mini)
    "duel-sr-l-w4-two": {
        "shadow_rate": 1,
        "horizon_min": 16384,
        "min_disc": 64,
        "warm": 4,
        "shares": (0.01, 0.99),
    },
    "duel-sr-l-w4-g2": {
        "shadow_rate": 1,
        "horizon_min": 16384,
        "min_disc": 64,
        "warm": 4,
        "grow_margin": 0.02,
    },
    "duel-sr-l-m1-g3": {
        "shadow_rate": 1,
        "horizon_min": 16384,
        "min_disc": 64,
        "margin": 0.01,
        "grow_margin": 0.03,
    },
}
for _name, _kw in _DUELS.items():
    VARIANTS[_name] = _v(Duel, **_kw)
VARIANTS["current"] = lambda size: TinyLFUCache(size, seed=SEED)


# ----------------------------------------------------------------------------- round 8
# Round 7's duel made to fit the memory budget (issue 18, eighth session).


class _Leader:
    """Round 8: a keys-only W-TinyLFU whose window share never moves, for `Duel8`: the keys
    are the sampled keys' packed indexes (the shadow LRU's), each mapped to its packed
    indexes in a sketch that all leaders share (they count the same accesses, so their
    sketches would be equal). Unit weights; the contest and the streak rule are the cache's."""

    __slots__ = (
        "champion",
        "main_max",
        "probation",
        "protected",
        "protected_max",
        "size",
        "window",
        "window_max",
        "wins",
    )

    def __init__(self, size: int, share: float) -> None:
        from collections import OrderedDict

        self.size = size
        most = max(size - max(size * 0.01, 1), size * 0.01)  # as _resize_window
        self.window_max = min(max(share * size, size * 0.01), most)
        self.main_max = size - self.window_max
        self.protected_max = self.main_max * 0.8
        self.window: OrderedDict[int, int] = OrderedDict()  # least recent first
        self.probation: OrderedDict[int, int] = OrderedDict()
        self.protected: OrderedDict[int, int] = OrderedDict()
        self.champion: int | None = None
        self.wins = 0

    def access(
        self, h: int, x: int, first: bytearray, second: bytearray, mask: int, shift: int
    ) -> bool:
        """One access to sampled key `h` (`x`: its packed indexes in the shared sketch, which
        the caller increments afterwards): whether it hit."""
        protected = self.protected
        if h in protected:
            protected.move_to_end(h)
            return True
        window = self.window
        if h in window:
            window.move_to_end(h)
            return True
        probation = self.probation
        y = probation.pop(h, None)
        if y is not None:
            protected[h] = y
            while len(protected) > self.protected_max:
                k, v = protected.popitem(False)
                probation[k] = v
            return True
        if len(window) + len(probation) + len(protected) >= self.size:
            self._evict(first, second, mask, shift)
        window[h] = x
        if len(window) > self.window_max:
            room = self.main_max - len(probation) - len(protected)
            while window and len(window) > self.window_max and room >= 1:
                k, v = window.popitem(False)
                probation[k] = v
                room -= 1
        return False

    def _evict(self, first: bytearray, second: bytearray, mask: int, shift: int) -> None:
        window = self.window
        probation = self.probation
        protected = self.protected
        while window and len(window) + 1 > self.window_max:
            c, cx = window.popitem(False)
            if len(probation) + len(protected) + 1 <= self.main_max:
                probation[c] = cx
                continue
            region = probation or protected
            if region:
                v = next(iter(region))
                vx = region[v]
                a = first[cx & mask]
                b = second[cx >> shift]
                fc = a if a < b else b
                a = first[vx & mask]
                b = second[vx >> shift]
                admit = fc > (a if a < b else b)
                if not admit and fc > 5:  # the cache's _WARM and _STREAK
                    if v != self.champion:
                        self.champion = v
                        self.wins = 1
                    elif self.wins < 256:
                        self.wins += 1
                    else:
                        self.champion = None
                        admit = True
                if admit:
                    probation[c] = cx
                    del region[v]
            return
        for region in (probation, protected, window):
            if region:
                region.popitem(False)
                return


class Duel8(TinyLFUCache[Any, Any]):
    """Round 8: duel-l-w4 within the memory budget. The 99% leader is the shipped shadow
    LRU itself (an LRU is that share's limit), so two leaders remain (1% and 20%), compact
    (`_Leader`: no items dict, one sketch for both) and fed in the shadow LRU's batch at each
    sample's end from the same sampled keys (so only from the first eviction on, and only
    where the shadow LRU samples 1 in `least_rate` or fewer: maxsize over 1,024 at 64). The
    judging is round 7's mode 0: pairwise discordant counts, decayed over `horizon` x
    leader size sampled accesses (at least `horizon_min`), a first choice when one contestant
    beats each other one by `z` standard errors on `min_disc` discordant accesses at least,
    then a switch when another beats the chosen one so; the leaders' first `warm` x their
    size sampled accesses once full do not count. The choice takes effect at the sample's
    end (round 7's, in the middle of a sample). `sketch` 1: the leaders read the cache's own
    sketch (no sketch of theirs; its counts then include the rest of the sample's accesses).
    `sub` > 1: the leaders (and the duel) see only 1 in `sub` of the sampled keys, with
    leaders of size / sub entries; the shadow LRU is as shipped."""

    shares: tuple[float, ...] = (0.01, 0.2)  # the leaders; the shadow LRU stands for lru_share
    lru_share = 0.99
    least_rate = 64
    least = 16  # no leaders of fewer entries
    horizon = 32.0
    horizon_min = 16384.0
    min_disc = 64.0
    z = 2.0
    warm = 4.0
    sketch = 0
    sub = 1
    early = 0  # 1: the leaders are fed while the cache fills up too (round 7's were)
    leader_seed = -1  # the leaders' sketch salt: < 0 the cache's own (7 for the first runs)

    def __init__(self, maxsize: int, **kw: Any) -> None:
        for name, value in kw.items():
            setattr(self, name, value)
        self._choice = -1
        self._switches = 0
        super().__init__(maxsize, seed=SEED)

    def _set_periods(self, capacity: int) -> None:
        super()._set_periods(capacity)
        rate = self._shadow_mask + 1
        sub = int(self.sub)
        size = self._shadow_size // sub
        self._leaders: list[_Leader] = []
        if (
            self._weights is not None
            or math.isinf(self._maxsize)
            or rate < self.least_rate
            or size < self.least
        ):
            return
        self._leaders = [_Leader(size, s) for s in self.shares]
        self._leader_size = size
        self._sub_mask = (sub - 1) << (self._shift + (rate - 1).bit_length())
        assert len(self._leaders) == 2
        # Decayed counts of the sampled accesses by which contestants hit (bit i: the
        # leaders', then the shadow LRU's), from which the pairwise discordant counts follow.
        self._patterns = [0.0] * 8
        self._only = [[0.0] * 3 for _ in range(3)]
        self._leaders_full = False
        self._fed = 0
        self._period = size
        self._keep = math.exp(-size / max(self.horizon * size, self.horizon_min, 1))
        self._warming = int(self.warm * size)
        import random as _random

        self._leader_salt = (
            _random.Random(int(self.leader_seed)).getrandbits(62)
            if self.leader_seed >= 0
            else self._salt  # the cache's own, as _tinylfu.py would have it
        )
        if self.sketch:
            self._lrows = self._sketch.rows
            self._lmask = self._sketch.mask
            self._lshift = self._sketch.shift
        else:
            from cachekit._tinylfu import FrequencySketch

            self._lsketch = FrequencySketch(max(size, 512))
            self._lrows = self._lsketch.rows
            self._lmask = self._lsketch.mask
            self._lshift = self._lsketch.shift
            sample = min(max(2 * size, 1_000), 20_000)  # a mini's sample, then its aging
            self._lage = -(-16 * size // sample) * sample
            self._lunaged = 0

    def _replay_shadow(self) -> None:
        leaders = self._leaders
        if not leaders:
            super()._replay_shadow()
            return
        shadow = self._shadow
        size = self._shadow_size
        hits = missed = shadow_only = own_only = 0
        first, second = self._lrows
        lmask = self._lmask
        lshift = self._lshift
        own = self.sketch
        salt = self._leader_salt
        sub_mask = self._sub_mask
        one, two = leaders
        patterns = self._patterns
        for h in self._sampled:
            miss = h < 0
            if miss:
                h = ~h
                missed += 1
            if h in shadow:
                shadow.move_to_end(h)
                hits += 1
                lru_hit = True
                if miss:
                    shadow_only += 1
            else:
                if not miss:
                    own_only += 1
                shadow[h] = None
                if len(shadow) > size:
                    shadow.popitem(False)
                lru_hit = False
            if h & sub_mask:
                continue
            if own:
                x = h
            else:
                y = hash((h, salt))
                x = (y & lmask) | ((y >> 32) & lmask) << lshift
            pattern = 4 if lru_hit else 0  # bit i: contestant i hit (the shadow LRU last)
            if one.access(h, x, first, second, lmask, lshift):
                pattern |= 1
            if two.access(h, x, first, second, lmask, lshift):
                pattern |= 2
            if not own:
                i = x & lmask
                j = x >> lshift
                a = first[i]
                b = second[j]
                if a <= b and a < 15:
                    first[i] = a + 1
                if b <= a and b < 15:
                    second[j] = b + 1
                self._lunaged += 1
                if self._lunaged >= self._lage:
                    self._lsketch.halve()
                    self._lunaged = 0
            if not self._leaders_full:
                self._leaders_full = (
                    len(two.window) + len(two.probation) + len(two.protected) >= two.size
                )
                if not self._leaders_full:
                    continue  # the leaders are filling up
            if self._warming > 0:
                self._warming -= 1
                continue
            patterns[pattern] += 1
            self._fed += 1
            if self._fed >= self._period:
                self._fed = 0
                self._judge()
        self._shadow_sampled += len(self._sampled)
        self._shadow_hits += hits
        self._shadow_missed += missed
        self._shadow_only += shadow_only
        self._own_only += own_only
        self._sampled.clear()

    def _leads(self, i: int, j: int) -> bool:
        a = self._only[i][j]
        b = self._only[j][i]
        return a - b > self.z * math.sqrt(a + b) and a + b >= self.min_disc

    def _judge(self) -> None:
        patterns = self._patterns
        only = self._only
        n = len(only)
        for i in range(n):
            for j in range(n):
                if i != j:  # the two patterns where i hit and j missed
                    m = 1 << i
                    k = 7 ^ m ^ (1 << j)  # the third contestant's bit
                    only[i][j] = patterns[m] + patterns[m | k]
        current = self._choice
        if current < 0:
            for i in range(n):
                if all(self._leads(i, j) for j in range(n) if j != i):
                    self._choice = i
                    self._switches += 1
                    break
        else:
            best = max(range(n), key=lambda i: only[i][current] - only[current][i])
            if best != current and self._leads(best, current):
                self._choice = best
                self._switches += 1
        keep = self._keep
        self._patterns[:] = [c * keep for c in patterns]

    def _end_sample(self) -> None:
        if self.early and self._leaders and not self._full_sample:
            # The cache is filling up: the leaders (and the shadow LRU's contents, not its
            # counts, which _filled zeroes) are fed already, so they are full when it is.
            self._replay_shadow()
        super()._end_sample()

    def _steer(self, hits: int, window_hits: int) -> float:
        target = super()._steer(hits, window_hits)
        if self._leaders and self._choice >= 0:
            shares = (*self.shares, self.lru_share)
            return shares[self._choice] * self._maxsize
        return target


_DUEL8S: dict[str, dict[str, Any]] = {
    "duel8": {},  # 1% and 20% leaders, the shadow LRU for 99%, at 1 in 64, warm 4
    "duel8-ms": {"sketch": 1},  # the leaders read the cache's own sketch
    "duel8-s2": {"sub": 2},  # leaders at 1 in 128
    "duel8-e": {"early": 1},  # fed from the first access, not the first eviction
    "duel8-s2-e": {"sub": 2, "early": 1},
}
for _name, _kw in _DUEL8S.items():
    VARIANTS[_name] = _v(Duel8, **_kw)


class NoDuel(TinyLFUCache[Any, Any]):
    """The shipped policy without its duel (no leaders at any size): the policy before round
    8, for the cost and memory comparisons of `budget`, and the harness."""

    def _set_periods(self, capacity: int) -> None:
        super()._set_periods(capacity)
        self._leaders = ()


VARIANTS["no-duel"] = lambda size: NoDuel(size, seed=SEED)


def budget(names: list[str], sizes: tuple[int, ...] = (500, 4_096, 32_768)) -> None:
    """Round 8: what a variant costs, as benchmarks/hitratio.py's cost rows measure it, at
    more sizes: each variant's time per access on Zipf(0.9) (10 x size keys, 200,000
    accesses; at 500 the cost row's own trace) as a ratio to cachetools' LRUCache in the
    same repeat (interleaved, order rotating, collector off, median of 9), and its bytes per
    entry (tracemalloc) at 100,000 entries once full and churned (Zipf(0.9) over 1M keys,
    600,000 accesses, so the shadow LRU and any leaders are full), against LRUCache's.
    python -m benchmarks.adapt_variants budget current duel8 ..."""
    import gc
    import statistics
    import time
    import tracemalloc

    import cachetools

    from . import traces

    def replay(cache: Any, keys: list[int]) -> None:
        for key in keys:
            if key in cache:
                cache[key]
            else:
                cache[key] = None

    factories: dict[str, Callable[[int], Any]] = {"lru": cachetools.LRUCache}
    factories.update({name: VARIANTS[name] for name in names})
    order = list(factories)
    print(f"cachetools {cachetools.__version__}")
    for size in sizes:
        if size == 500:
            keys = traces.zipf(0.9, 50_000, 100_000, seed=7).keys
        else:
            keys = traces.zipf(0.9, 10 * size, 200_000, seed=7).keys
        elapsed: dict[str, list[float]] = {name: [] for name in order}
        for repeat in range(9):
            turn = order[repeat % len(order) :] + order[: repeat % len(order)]
            for name in turn:
                cache = factories[name](size)
                gc.disable()
                try:
                    began = time.perf_counter()
                    replay(cache, keys)
                    elapsed[name].append(time.perf_counter() - began)
                finally:
                    gc.enable()
        for name in order:
            ratio = statistics.median(
                e / lru for e, lru in zip(elapsed[name], elapsed["lru"], strict=True)
            )
            ns = 1e9 * statistics.median(elapsed[name]) / len(keys)
            print(f"cost @ {size:6d} {name:24s} {ns:6.0f} ns  {ratio:.2f}x LRUCache", flush=True)
    keys = [1_000 + key for key in traces.zipf(0.9, 1_000_000, 600_000, seed=7).keys]
    for name in order:
        gc.collect()
        tracemalloc.start()
        try:
            cache = factories[name](100_000)
            replay(cache, keys)
            used = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        extra = ""
        if getattr(cache, "_leaders", None):
            held = [len(x.window) + len(x.probation) + len(x.protected) for x in cache._leaders]
            extra = f" (leaders {held})"
        print(
            f"memory {name:24s} {used / len(cache):6.1f} B/entry, {len(cache)} entries{extra}",
            flush=True,
        )
        del cache


def seeds(names: list[str], full: bool, salts: tuple[int, ...] = (1, 2, 3, 4)) -> None:
    """Round 8: each variant's cells averaged over the salts (the runs of `benchmarks.adapt
    run NAME --seed N`, in results/), then the columns as adapt.summarize gives them, and
    each salt's own mean gaps. python -m benchmarks.adapt_variants seeds [--full] NAME..."""
    import json
    import statistics

    from .adapt import RESULTS, baseline_path
    from .traces import HELD_OUT

    base = json.loads(baseline_path(full).read_text())
    length = "full" if full else "quick"
    for name in names:
        runs = []
        for salt in salts:
            label = name if salt == 1 else f"{name}+seed{salt}"
            runs.append(json.loads((RESULTS / f"adapt-{label}-{length}.json").read_text()))
        line = f"{name:20s}"
        for held in (False, True):
            keep = [i for i, r in enumerate(runs[0]) if (r["family"] in HELD_OUT) == held]
            gaps, worst, miss = [], (0.0, ""), 0
            for i in keep:
                cell = runs[0][i]
                b = base[f"{cell['trace']}|{cell['size']}"]
                hit = statistics.mean(run[i]["hit"] for run in runs)
                gaps.append(b["opt"] - hit)
                vs_best = hit - max(b["lru"], b["lfu"], b["theine"])
                miss += vs_best < -1
                if vs_best < worst[0] or not worst[1]:
                    worst = (vs_best, f"{cell['trace']}@{cell['size']}")
            each = " ".join(f"{statistics.mean(run[i]['gap'] for i in keep):.2f}" for run in runs)
            line += (
                f"  {'held' if held else 'tuned'} {statistics.mean(gaps):5.2f} / {miss:2d} / "
                f"{worst[0]:+.2f} {worst[1]} ({each})"
            )
        print(line)


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["budget"]:
        budget(sys.argv[2:])
    elif sys.argv[1:2] == ["seeds"]:
        full = "--full" in sys.argv
        seeds([a for a in sys.argv[2:] if a != "--full"], full)
