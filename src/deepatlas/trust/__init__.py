"""MAP 7.3 Trustworthy AI: fairness by adversarial debiasing (``debias``)."""
