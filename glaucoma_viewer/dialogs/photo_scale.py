"""Analysis > Photo scale…: the fundus photo's scale typed in by the user.

Most photos do not carry their scale, so disc sizes are in pixels and the DDLS stage is a range over small to
large discs. A scale typed in here (micrometres per pixel, from the camera's specification, or worked out from the
disc's vertical diameter measured at the slit lamp, as the DDLS itself prescribes) makes the exam's photo spacing
``"user"``: mm / mm² values and one DDLS stage. It holds for the exam until the window closes, or, ticked "for
every W×H photo", for every photo of that size that carries no scale of its own, now and in later sessions (one
camera at one resolution: the scale a clinic types once).
"""

from __future__ import annotations

from typing import Optional

from PySide6 import QtWidgets

from engine.io.exam import PHOTO_UM_PER_PX_RANGE


class PhotoScaleDialog(QtWidgets.QDialog):
    """µm per pixel, or the disc's vertical diameter in mm (with the disc's height in px from the analysis).

    After ``exec()`` returns Accepted, :attr:`value` is the scale in µm per pixel, or None for "not known"
    (back to the scale the file gave, if any), and :attr:`every_size` whether it is for every photo of this size
    (``photo_size``, "W×H") rather than this exam alone.
    """

    def __init__(self, parent: Optional[QtWidgets.QWidget], label: str, current_um: Optional[float],
                 disc_height_px: Optional[float], read_scale: str, photo_size: str = "",
                 every_size: bool = False) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Photo scale — {label}")
        self.value: Optional[float] = current_um
        self._height = disc_height_px if disc_height_px and disc_height_px > 0 else None
        low, high = PHOTO_UM_PER_PX_RANGE
        self.um = QtWidgets.QDoubleSpinBox(minimum=low, maximum=high, decimals=2, singleStep=0.1)
        self.um.setSuffix(" µm per pixel")
        self.um.setValue(current_um or 5.0)
        self.disc_mm = QtWidgets.QDoubleSpinBox(minimum=0.5, maximum=4.0, decimals=2, singleStep=0.05)
        self.disc_mm.setSuffix(" mm")
        self.disc_mm.setEnabled(self._height is not None)
        self._sync_disc()
        self.um.valueChanged.connect(self._sync_disc)
        self.disc_mm.valueChanged.connect(self._from_disc)
        self.every_size = every_size
        self.size_box = QtWidgets.QCheckBox(
            f"For every {photo_size} px photo without its own scale, in later sessions too")
        self.size_box.setToolTip("One camera at one resolution takes every photo at the same scale. A photo whose "
                                 "file gives its scale keeps that one; one typed for an exam alone wins.")
        self.size_box.setChecked(every_size)
        self.size_box.setVisible(bool(photo_size))

        form = QtWidgets.QFormLayout()
        form.addRow("Scale of this photo", self.um)
        disc_text = (f"or: the disc's vertical diameter ({self._height:.0f} px tall here)" if self._height else
                     "or: the disc's vertical diameter (needs a disc outline)")
        form.addRow(disc_text, self.disc_mm)
        note = QtWidgets.QLabel(
            f"Now: {read_scale}. A scale typed in gives mm / mm² values and one DDLS stage by disc size (small < 1.50 "
            "mm, large > 2.00 mm tall). Use the camera's own figure for this resolution, or the diameter measured at "
            "the slit lamp with the lens's correction. Unticked below, it holds for this exam until the window closes.")
        note.setObjectName("note")
        note.setWordWrap(True)
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Ok
                                             | QtWidgets.QDialogButtonBox.StandardButton.Cancel)
        self.unknown_button = buttons.addButton("Not known", QtWidgets.QDialogButtonBox.ButtonRole.ResetRole)
        self.unknown_button.setEnabled(current_um is not None)
        buttons.accepted.connect(self._accept_scale)
        buttons.rejected.connect(self.reject)
        self.unknown_button.clicked.connect(self._accept_unknown)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(self.size_box)
        layout.addWidget(buttons)
        self.setMinimumWidth(460)

    def _sync_disc(self) -> None:
        if self._height is not None:
            self.disc_mm.blockSignals(True)
            self.disc_mm.setValue(self.um.value() * self._height / 1000.0)
            self.disc_mm.blockSignals(False)

    def _from_disc(self, mm: float) -> None:
        if self._height is not None:
            self.um.blockSignals(True)
            self.um.setValue(mm * 1000.0 / self._height)
            self.um.blockSignals(False)

    def _accept_scale(self) -> None:
        self._accept_with(float(self.um.value()))

    def _accept_unknown(self) -> None:
        self._accept_with(None)

    def _accept_with(self, value: Optional[float]) -> None:
        self.value = value
        self.every_size = not self.size_box.isHidden() and self.size_box.isChecked()
        self.accept()
