"""Judgement: the rule catalogue, the rule families (``*_rules``), baselines, the site
policy and advisories. ``evaluate`` turns finished hosts into findings; every rule is a
pure function of observations, so a saved scan can be judged again offline.
"""
