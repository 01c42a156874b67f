"""common_eval: the ranking core shared by every method of the reproduction monorepo.

    from common_eval import evaluate, jaccard_distance, k_reciprocal_rerank

Never imports torch or tensorflow, so every subproject can use it in its own stack.
"""
from .jaccard import jaccard_distance, k_reciprocal_rerank
from .rank import AP_FLAVOURS, EvaluationError, RankResult, evaluate
from .video import mars_split, pool_tracklets
from .visrank import visualize_ranked_results

__all__ = ["AP_FLAVOURS", "EvaluationError", "RankResult", "evaluate", "jaccard_distance",
           "k_reciprocal_rerank",
           "mars_split", "pool_tracklets",
           "visualize_ranked_results"]
__version__ = "1.0.0"
