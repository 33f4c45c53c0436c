/// Architecture of the generator and discriminator (NVlabs option names in comments).
public struct ModelConfig: Sendable, Equatable {
    public enum Upsampling: String, Sendable, CaseIterable { case normal, more, most }

    public var semanticNC: Int          // label_nc (+1 dontcare) (+1 instance edges)
    public var cropSize: Int            // crop_size: image width
    public var aspectRatio: Double      // aspect_ratio: width / height
    public var upsampling: Upsampling   // num_upsampling_layers
    public var ngf: Int
    public var ndf: Int
    public var spadeHidden: Int         // NVlabs hard-codes 128
    public var nLayersD: Int            // n_layers_D
    public var numD: Int                // num_D
    public var lambdaFeat: Float        // lambda_feat
    public var ganFeatLoss: Bool        // !no_ganFeat_loss
    public var ganMode: GANMode         // gan_mode

    public init(semanticNC: Int, cropSize: Int, aspectRatio: Double = 1, upsampling: Upsampling = .normal,
                ngf: Int = 64, ndf: Int = 64, spadeHidden: Int = 128, nLayersD: Int = 4, numD: Int = 2,
                lambdaFeat: Float = 10, ganFeatLoss: Bool = true, ganMode: GANMode = .hinge) {
        self.semanticNC = semanticNC; self.cropSize = cropSize; self.aspectRatio = aspectRatio
        self.upsampling = upsampling; self.ngf = ngf; self.ndf = ndf; self.spadeHidden = spadeHidden
        self.nLayersD = nLayersD; self.numD = numD; self.lambdaFeat = lambdaFeat; self.ganFeatLoss = ganFeatLoss
        self.ganMode = ganMode
    }

    public var numUp: Int { [.normal: 5, .more: 6, .most: 7][upsampling]! }
    public var sw: Int { cropSize / (1 << numUp) }
    /// round(sw / aspect_ratio) with Python's round-half-to-even.
    public var sh: Int { Int((Double(sw) / aspectRatio).rounded(.toNearestOrEven)) }
    public var imageWidth: Int { sw << numUp }
    public var imageHeight: Int { sh << numUp }

    /// The reference fixtures' tiny configuration (reference/README.md).
    public static let tiny = ModelConfig(semanticNC: 5, cropSize: 64, ngf: 8, ndf: 8, spadeHidden: 16)
}
