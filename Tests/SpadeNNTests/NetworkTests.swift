import XCTest
import SafeTensors
import SpadeCore
import SpadeNN
import SpadeTestSupport

/// Whole networks and the whole training iteration against reference/{generator,discriminator,iteration}.
final class NetworkTests: XCTestCase {
    let config = ModelConfig.tiny

    func testGeneratorTrainForwardBackwardBuffersAndEval() throws {
        let fx = try Fixtures.load("generator"), initial = try Fixtures.load("tiny_init")
        let g = SPADEGenerator(config)
        XCTAssertEqual(g.state.stateKeys.count, 234)
        XCTAssertEqual(g.state.params.count, 144)
        XCTAssertEqual(g.state.parameterCount, 1_459_579)
        try initial.load(into: g.state, prefix: "netG.")
        let ctx = Context()
        let seg = try fx.tensor("input.semantics", ctx.arena)
        var acts: [String: [Float]] = [:]
        let fake = g.forward(seg, mode: .train, ctx) { acts[$0] = $1.toArray() }
        assertClose(fake, try fx.f("output"), rel: Tol.network, "output")
        for (name, values) in acts where name != "conv_img" {
            assertClose(values, try fx.f("act." + name), rel: Tol.network, "act.\(name)")
        }
        g.backward(try fx.tensor("dy", ctx.arena), ctx)
        let zero = structurallyZeroGradients(blockNames: g.blocks.map(\.name), existing: g.state.params.map(\.name))
        XCTAssertEqual(zero.count, 17)
        try assertGradients(g.state, fx, prefix: "grad.netG.", zeroNames: zero)
        for b in g.state.buffers {
            assertClose(g.state.floats(named: b.name)!, try fx.f("after.netG." + b.name), rel: Tol.op, "after.\(b.name)")
        }
        for n in g.state.counterNames { XCTAssertEqual(g.state.counter(named: n), try fx.i64("after.netG." + n)[0]) }
        // DESIGN §9 erratum: eval.output uses tiny_init parameters with the after.* buffers.
        let evalCtx = Context()
        let evalFake = g.forward(try fx.tensor("input.semantics", evalCtx.arena), mode: .eval, evalCtx)
        assertClose(evalFake, try fx.f("eval.output"), rel: Tol.network, "eval.output")
    }

    func testMultiscaleDiscriminatorOutputsAndGradients() throws {
        let fx = try Fixtures.load("discriminator"), initial = try Fixtures.load("tiny_init")
        let d = MultiscaleDiscriminator(config)
        XCTAssertEqual(d.state.stateKeys.count, 26)
        XCTAssertEqual(d.state.parameterCount, 90_130)
        try initial.load(into: d.state, prefix: "netD.")
        let ctx = Context()
        let input = try fx.tensor("input", ctx.arena)
        let outs = d.forward(input, mode: .train, ctx)
        var douts: [[Tensor?]] = []
        for s in 0..<2 {
            var row: [Tensor?] = []
            for l in 0..<5 {
                assertClose(outs[s][l], try fx.f("out.s\(s).l\(l)"), rel: Tol.network, "out.s\(s).l\(l)")
                row.append(try fx.tensor("dout.s\(s).l\(l)", ctx.arena))
            }
            douts.append(row)
        }
        let dx = d.backward(douts, samples: 4, parameterGradients: true, inputGradient: true, ctx)!
        assertClose(dx, try fx.f("dinput"), rel: Tol.grad, "dinput")
        try assertGradients(d.state, fx, prefix: "grad.netD.")
        for b in d.state.buffers {
            assertClose(d.state.floats(named: b.name)!, try fx.f("after.netD." + b.name), rel: Tol.op, "after.\(b.name)")
        }
    }

    /// The heart of the numerical core: one full iteration, batch 2 (and batch 4).
    func testCanonicalIterationBatch2() throws { try checkIteration("iteration", batch: 2) }
    func testCanonicalIterationBatch4() throws { try checkIteration("iteration_b4", batch: 4) }

    func checkIteration(_ name: String, batch: Int) throws {
        let fx = try Fixtures.load(name), initial = try Fixtures.load("tiny_init")
        let it = TrainingIteration(config: config)
        try initial.load(into: it.generator.state, prefix: "netG.")
        try initial.load(into: it.discriminator.state, prefix: "netD.")
        let before = (g: it.generator.state.valueBuffer.map { $0 }, d: it.discriminator.state.valueBuffer.map { $0 })
        let losses = it.computeGradients(semantics: try fx.f("input.semantics"), image: try fx.f("input.image"), batch: batch)
        assertClose(it.lastFake!, try fx.f("fake"), rel: Tol.network, "fake")
        for s in 0..<2 { for l in 0..<5 {
            assertClose(it.lastOutputs[s][l], try fx.f("d_out.s\(s).l\(l)"), rel: Tol.network, "d_out.s\(s).l\(l)")
        } }
        for (k, v) in [("D_Fake", losses.dFake), ("D_real", losses.dReal), ("G_GAN", losses.gGAN),
                       ("G_GANFeat", losses.gGANFeat), ("loss_D", losses.lossD), ("loss_G", losses.lossG)] {
            assertClose([Float(v)], try fx.f("loss." + k), rel: Tol.network, "loss.\(k)")
        }
        assertClose(it.lastDFake!, try fx.f("dfake"), rel: Tol.grad, "dfake")
        let zero = structurallyZeroGradients(blockNames: it.generator.blocks.map(\.name),
                                             existing: it.generator.state.params.map(\.name))
        try assertGradients(it.generator.state, fx, prefix: "grad.netG.", zeroNames: zero)
        try assertGradients(it.discriminator.state, fx, prefix: "grad.netD.")

        it.applyUpdates(lrG: 1e-4, lrD: 4e-4)
        XCTAssertEqual(it.adamG.step, try fx.i64("adam.step.G")[0])
        XCTAssertEqual(it.adamD.step, try fx.i64("adam.step.D")[0])
        for (state, net, lr, initialValues) in [(it.generator.state, "netG", 1e-4, before.g),
                                                 (it.discriminator.state, "netD", 4e-4, before.d)] {
            for p in state.params {
                let after = state.floats(named: p.name)!, expected = try fx.f("after.\(net).\(p.name)")
                let ambiguous = Set((fx["ambiguous.\(net).\(p.name)"]?.int64s ?? []).map { Int($0) })
                let start = Array(initialValues[p.offset..<(p.offset + p.count)])
                // Adam's sign step on rounding noise: only |after - before| <= lr is meaningful there.
                let r = checkParameterAfterStep(after: after, before: start, expected: expected, ambiguous: ambiguous,
                                                everyElementAmbiguous: net == "netG" && zero.contains(p.name), lr: lr)
                XCTAssertEqual(r.ambiguousViolations, [], "\(net).\(p.name): ambiguous elements moved more than lr")
                XCTAssertLessThanOrEqual(r.worstOverLR, ReferenceTolerance.afterStep, "after.\(net).\(p.name)")
            }
            for b in state.buffers {
                assertClose(state.floats(named: b.name)!, try fx.f("after.\(net).\(b.name)"), rel: Tol.op, "after.\(net).\(b.name)")
            }
            for n in state.counterNames { XCTAssertEqual(state.counter(named: n), try fx.i64("after.\(net).\(n)")[0], n) }
        }
    }

    /// llm.c's "allocations per step after warm-up ~ 0": the arena and workspace stop growing.
    func testNoAllocationsAfterWarmUp() throws {
        let fx = try Fixtures.load("iteration"), initial = try Fixtures.load("tiny_init")
        let it = TrainingIteration(config: config)
        try initial.load(into: it.generator.state, prefix: "netG.")
        try initial.load(into: it.discriminator.state, prefix: "netD.")
        let s = try fx.f("input.semantics"), x = try fx.f("input.image")
        for _ in 0..<2 { _ = it.computeGradients(semantics: s, image: x, batch: 2); it.applyUpdates(lrG: 1e-4, lrD: 4e-4) }
        let arenaAllocs = it.context.arena.systemAllocations, wsAllocs = it.context.workspace.systemAllocations
        for _ in 0..<2 { _ = it.computeGradients(semantics: s, image: x, batch: 2); it.applyUpdates(lrG: 1e-4, lrD: 4e-4) }
        XCTAssertEqual(it.context.arena.systemAllocations, arenaAllocs)
        XCTAssertEqual(it.context.workspace.systemAllocations, wsAllocs)
    }
}
