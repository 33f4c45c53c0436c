// SpadeTrain: the trainer. Config (Config.swift, ConfigKeys.swift), metrics and
// TensorBoard logs, the samples page, progress display, atomic checkpoint files
// and stop signals live here; the training loop wires SpadeNN, SpadeDist and
// SpadeData together on top of them.
