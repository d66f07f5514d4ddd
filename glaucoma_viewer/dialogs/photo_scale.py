"""Analysis > Photo scale…: the fundus photo's scale typed in by the user.

Most photos do not carry their scale, so disc sizes are in pixels and the DDLS stage is a range over small to
large discs. A scale typed in here (micrometres per pixel, from the camera's specification, or worked out from the
disc's vertical diameter measured at the slit lamp, as the DDLS itself prescribes) makes the exam's photo spacing
``"user"``: mm / mm² values and one DDLS stage. It holds for the exam until the window closes.
"""

from __future__ import annotations

from typing import Optional

from PySide6 import QtWidgets

from engine.io.exam import PHOTO_UM_PER_PX_RANGE


class PhotoScaleDialog(QtWidgets.QDialog):
    """µm per pixel, or the disc's vertical diameter in mm (with the disc's height in px from the analysis).

    After ``exec()`` returns Accepted, :attr:`value` is the scale in µm per pixel, or None for "not known"
    (back to the scale the file gave, if any).
    """

    def __init__(self, parent: Optional[QtWidgets.QWidget], label: str, current_um: Optional[float],
                 disc_height_px: Optional[float], read_scale: str) -> None:
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

        form = QtWidgets.QFormLayout()
        form.addRow("Scale of this photo", self.um)
        disc_text = (f"or: the disc's vertical diameter ({self._height:.0f} px tall here)" if self._height else
                     "or: the disc's vertical diameter (needs a disc outline)")
        form.addRow(disc_text, self.disc_mm)
        note = QtWidgets.QLabel(
            f"Now: {read_scale}. A scale typed in gives mm / mm² values and one DDLS stage by disc size (small < 1.50 "
            "mm, large > 2.00 mm tall). Use the camera's own figure for this resolution, or the diameter measured at "
            "the slit lamp with the lens's correction. It holds for this exam until the window closes.")
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
        self.value = float(self.um.value())
        self.accept()

    def _accept_unknown(self) -> None:
        self.value = None
        self.accept()
