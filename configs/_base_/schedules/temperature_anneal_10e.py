# Softmax temperature of A2D2C / A2D2C+ / ODConv / DynamicConv: 30 -> 1 over the first
# 10 epochs (the A2D2C paper's and DynamicConv/ODConv's classification schedule). Added
# as a second `_base_` by the variants whose layer has a temperature (not CondConv, DCD).
custom_hooks = [
    dict(type='TemperatureAnnealHook', start_temperature=30.0,
         end_temperature=1.0, anneal_epochs=10)
]
