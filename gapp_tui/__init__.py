"""GAPP: GNN-Assisted Pipeline Partitioning.

The data flow, one module per noun:
ModelSpec (zoo) -> BlockChain (blocks) -> BlockGraph (features) -> Measurement (measure, store)
-> Predictor (predict) -> CostTable / Link / Plan / Estimate (partition) -> pipeline run (pipeline).
"""

__version__ = "0.1.0"
