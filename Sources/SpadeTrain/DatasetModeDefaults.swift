extension TrainConfig {
    /// NVlabs' defaults of a dataset mode (its dataset class's `modify_commandline_options`,
    /// and the base option where spade-dist's default differs from NVlabs'), given to every key a
    /// config does not set, so `dataset_mode: cityscapes` + `dataroot` is NVlabs'
    /// `--dataset_mode cityscapes --dataroot ...`. `isTrain` false is test.py (ADE20K's
    /// load_size 256). NVlabs' batchSize 16 for Cityscapes is a global batch over its GPUs and is
    /// not copied: batchSize here is per rank.
    static func datasetModeDefaults(mode: String, isTrain: Bool) -> [(String, ConfigValue)] {
        switch mode {
        case "cityscapes":
            return [("preprocess_mode", .string("fixed")), ("load_size", .int(512)), ("crop_size", .int(512)),
                    ("label_nc", .int(35)), ("aspect_ratio", .float(2.0)), ("num_upsampling_layers", .string("more")),
                    ("contain_dontcare_label", .bool(false)), ("no_instance", .bool(false))]
        case "ade20k":
            return [("preprocess_mode", .string("resize_and_crop")), ("load_size", .int(isTrain ? 286 : 256)),
                    ("crop_size", .int(256)), ("label_nc", .int(150)), ("contain_dontcare_label", .bool(true)),
                    ("no_instance", .bool(true)), ("aspect_ratio", .float(1.0)), ("num_upsampling_layers", .string("normal"))]
        default:
            return []
        }
    }
}
