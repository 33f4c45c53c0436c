import ArgumentParser
import Foundation
import SpadeNN
import SpadeTrain

@main
struct SpadeDistCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "spade-dist",
        abstract: "Train SPADE (GauGAN) on CPUs, data-parallel over MPI.")
    @Option var ngf = 8
    @Option var size = 64
    @Option var batch = 2
    @Option var hidden = 16
    func run() throws {
        var c = ModelConfig.tiny
        c.ngf = ngf; c.ndf = ngf; c.cropSize = size; c.spadeHidden = hidden
        print(Benchmarks.table(Benchmarks.convolutions(config: c, batch: batch, repeats: 3)))
        let s = Benchmarks.step(config: c, batch: batch, iterations: 3)
        print(s)
    }
}
