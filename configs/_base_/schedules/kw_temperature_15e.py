# KernelWarehouse's mixing temperature τ (a blend weight in [0, 1], not a softmax
# divisor): 1 -> 0 over the first 15 epochs, the official MobileNetV2 schedule
# (`temp_epoch` 15 of OSVAI/KernelWarehouse's MobileNetV2 configs, 150 epochs). Added as
# a second `_base_` by the MobileNetV2 KW classifiers of configs/kernel_warehouse/.
custom_hooks = [
    dict(type='TemperatureAnnealHook', layer_schedules=dict(
        KW=dict(start_temperature=1.0, end_temperature=0.0, anneal_epochs=15)))
]
