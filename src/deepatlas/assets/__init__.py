"""Small files shipped with deepatlas: the Fashion-MNIST classifier that the GAN recipes'
Frechet distance is measured with (see deepatlas.tasks.gan_quality for how it is made)."""
