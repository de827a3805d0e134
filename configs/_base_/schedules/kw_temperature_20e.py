# KernelWarehouse's mixing temperature τ (a blend weight in [0, 1], not a softmax
# divisor): 1 -> 0 over the first 20 epochs, the official ResNet schedule (`temp_epoch`
# 20 of OSVAI/KernelWarehouse main.py). Added as a second `_base_` by the ResNet KW
# classifiers of configs/kernel_warehouse/.
custom_hooks = [
    dict(type='TemperatureAnnealHook', layer_schedules=dict(
        KW=dict(start_temperature=1.0, end_temperature=0.0, anneal_epochs=20)))
]
