import SpadeData
import SpadeNN

extension TrainConfig {
    /// The generator/discriminator architecture this config describes.
    public var modelConfig: ModelConfig {
        ModelConfig(semanticNC: semanticChannels, cropSize: crop_size, aspectRatio: aspect_ratio,
                    upsampling: ModelConfig.Upsampling(rawValue: num_upsampling_layers) ?? .normal,
                    ngf: ngf, ndf: ndf, spadeHidden: spade_hidden, nLayersD: n_layers_D, numD: num_D,
                    lambdaFeat: Float(lambda_feat), ganFeatLoss: !no_ganFeat_loss,
                    ganMode: GANMode(rawValue: gan_mode) ?? .hinge)
    }

    /// What the data pipeline needs from this config.
    public var datasetOptions: DatasetOptions {
        var o = DatasetOptions()
        o.datasetMode = dataset_mode
        o.dataroot = dataroot
        o.phase = phase
        o.noPairingCheck = no_pairing_check
        o.ade20kShiftLabels = ade20k_shift_labels
        o.labelDir = label_dir
        o.imageDir = image_dir
        o.instanceDir = instance_dir.isEmpty ? nil : instance_dir
        o.labelNC = label_nc
        o.containDontcareLabel = contain_dontcare_label
        o.noInstance = no_instance
        o.labelEncoding = label_encoding
        o.labelColors = label_colors
        o.preprocessMode = preprocess_mode
        o.loadSize = load_size
        o.cropSize = crop_size
        o.aspectRatio = aspect_ratio
        o.noFlip = no_flip
        o.serialBatches = serial_batches
        o.maxDatasetSize = max_dataset_size
        o.seed = UInt64(truncatingIfNeeded: seed)
        o.syntheticCount = synthetic_count
        o.syntheticClasses = synthetic_classes
        return o
    }
}
