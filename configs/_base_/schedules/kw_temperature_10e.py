# KernelWarehouse's mixing temperature τ (a blend weight in [0, 1], not a softmax
# divisor): 1 -> 0 over the first 10 epochs, for the 100-epoch CIFAR recipe (the same
# tenth of training as ./temperature_anneal_10e.py gives the other layers). Added as a
# second `_base_` by the CIFAR KW configs of configs/kernel_warehouse/.
custom_hooks = [
    dict(type='TemperatureAnnealHook', layer_schedules=dict(
        KW=dict(start_temperature=1.0, end_temperature=0.0, anneal_epochs=10)))
]
